"""Typed results: the status object, the submit response, stream events and pages of a listing.

Each keeps the server's JSON in `raw`, so fields added by a newer server are never lost.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_MODEL = "google/veo-3.0-generate-preview"
WIDESCREEN = "16:9"
MP4 = "mp4"

# Accepted, waiting for its start (queued behind provider capacity, or its start in flight).
PENDING = "pending"
# The provider accepted it and is making the video.
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
DELETED = "deleted"
# Statuses after which nothing changes any more. Anything else (today `pending` and `processing`)
# is unfinished, so a server that adds an intermediate status does not end a wait early.
FINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED, DELETED})
# A running operation's estimated progress: not a status change, and sent without an event id.
PROGRESS_EVENT = "video.progress"


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as the server writes it ("2026-12-06T07:44:16.569Z"); None if absent or
    unreadable (the text stays in `raw`): a timing field is never worth failing a status over."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    # bool is an int to Python, never a count to the API.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class VideoStatus:
    """What `GET /v1/video/generations/{id}` returns; also the data of every stream event."""

    id: str
    status: str
    video_url: str | None = None
    error: str | None = None
    events_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Every sample (the first is video_url) and the poster, when completed.
    video_urls: tuple[str, ...] = ()
    thumbnail_url: str | None = None
    # Why it failed (safety_filtered, provider_error, …); `safety` carries the filter's reasons and count.
    error_code: str | None = None
    safety: dict[str, Any] | None = None
    # Timing (aware UTC datetimes): created_at always; started_at once processing; completed_at
    # once ended. A listing's entries carry these three only.
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    # Estimates: progress is 0 while pending, 1-99 while processing, 100 once completed (absent
    # when it failed or was cancelled); eta_seconds while queued (wait + run) or processing
    # (remaining); queue_position (1 = next) only while pending in a queue.
    progress: int | None = None
    eta_seconds: int | None = None
    queue_position: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def is_processing(self) -> bool:
        return self.status == PROCESSING

    @property
    def is_queued(self) -> bool:
        """Pending behind the provider's capacity, with a known place in the queue."""
        return self.status == PENDING and self.queue_position is not None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> VideoStatus:
        return cls(
            id=body["id"],
            status=body["status"],
            video_url=body.get("video_url"),
            error=body.get("error"),
            events_url=body.get("events_url"),
            raw=body,
            video_urls=tuple(body.get("video_urls") or ()),
            thumbnail_url=body.get("thumbnail_url"),
            error_code=body.get("error_code"),
            safety=body.get("safety"),
            created_at=_timestamp(body.get("created_at")),
            started_at=_timestamp(body.get("started_at")),
            completed_at=_timestamp(body.get("completed_at")),
            progress=_count(body.get("progress")),
            eta_seconds=_count(body.get("eta_seconds")),
            queue_position=_count(body.get("queue_position")),
        )


@dataclass(frozen=True)
class VideoGeneration(VideoStatus):
    """The submit response: a pending status plus the provider's operation name."""

    operation_name: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> VideoGeneration:
        status = VideoStatus.from_json(body)
        return cls(**{**vars(status), "raw": body}, operation_name=body.get("operation_name"))


@dataclass(frozen=True)
class VideoEvent:
    """One event from a stream: a status change (`video.<status>`), or a `video.progress` report.

    `id` is the account's event sequence number; None for a transient event (a progress report on
    a stream), which is never replayed: a resume goes on after the last event that had an id.
    """

    id: int | None
    type: str  # video.<status> | video.progress
    status: VideoStatus

    @property
    def is_transient(self) -> bool:
        return self.id is None

    @property
    def is_progress(self) -> bool:
        return self.type == PROGRESS_EVENT

    @classmethod
    def from_sse(cls, event_id: str | None, event_type: str, data: str) -> VideoEvent:
        event_number = None if event_id is None else int(event_id)
        return cls(id=event_number, type=event_type, status=VideoStatus.from_json(json.loads(data)))


@dataclass(frozen=True)
class VideoPage:
    """One page of `GET /v1/video/generations`, newest first; pass `next_after` as `after` for more."""

    data: list[VideoStatus]
    next_after: str | None

    @property
    def has_more(self) -> bool:
        return self.next_after is not None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> VideoPage:
        # The listing's shape lives here alone: {"data": [status objects], "next_after": cursor|null}.
        return cls(
            data=[VideoStatus.from_json(item) for item in body.get("data", [])],
            next_after=body.get("next_after"),
        )


# Image magic numbers: bytes given as an image are sent with the type they start like.
_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"RIFF", "image/webp"))

ImageInput = bytes | str | dict[str, Any]


def image_input(image: ImageInput, mime_type: str | None = None) -> dict[str, Any]:
    """An image as the API takes it: bytes (PNG, JPEG or WebP) as base64 data, a str as a URL, or
    a dict already in the API's shape (`{"data", "mimeType"}` or `{"url"}`)."""
    if isinstance(image, dict):
        return image
    if isinstance(image, str):
        return {"url": image}
    if mime_type is None:
        found = [kind for magic, kind in _IMAGE_TYPES if image.startswith(magic)]
        if not found:
            raise ValueError("image bytes are not PNG, JPEG or WebP: pass mime_type")
        mime_type = found[0]
    return {"data": base64.b64encode(image).decode(), "mimeType": mime_type}


@dataclass(frozen=True)
class MediaOptions:
    """Options beyond the reference document, by their Python names (None: left to the server)."""

    image: ImageInput | None = None
    last_frame: ImageInput | None = None
    # Images, or (image, "asset" | "style") pairs.
    reference_images: list[ImageInput | tuple[ImageInput, str]] | None = None
    video: str | None = None  # the id of a completed operation to extend
    sample_count: int | None = None
    generate_audio: bool | None = None
    enhance_prompt: bool | None = None
    resolution: str | None = None
    seed: int | None = None
    person_generation: str | None = None

    def parameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.image is not None:
            out["image"] = image_input(self.image)
        if self.last_frame is not None:
            out["lastFrame"] = image_input(self.last_frame)
        if self.reference_images is not None:
            out["referenceImages"] = [_reference(r) for r in self.reference_images]
        if self.video is not None:
            out["video"] = {"operationId": self.video}
        named = (
            ("sampleCount", self.sample_count),
            ("generateAudio", self.generate_audio),
            ("enhancePrompt", self.enhance_prompt),
            ("resolution", self.resolution),
            ("seed", self.seed),
            ("personGeneration", self.person_generation),
        )
        out.update((name, value) for name, value in named if value is not None)
        return out


def _reference(reference: ImageInput | tuple[ImageInput, str]) -> dict[str, Any]:
    if isinstance(reference, tuple):
        image, kind = reference
        return {"image": image_input(image), "referenceType": kind}
    if isinstance(reference, dict) and "image" in reference:
        return reference  # already {"image", "referenceType"}
    return {"image": image_input(reference)}


def generation_body(
    prompt: str,
    *,
    model: str = DEFAULT_MODEL,
    aspect_ratio: str | None = None,
    negative_prompt: str | None = None,
    response_format: str | None = None,
    duration_seconds: int | None = None,
    app_id: str | None = None,
    extra: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    media: MediaOptions | None = None,
) -> dict[str, Any]:
    """The documented submit body; optional fields are left out so the server's defaults apply.

    `parameters` is the REST body's own `parameters` object (as the reference document writes it);
    the named options are added to it and win over it.
    """
    parameters = dict(parameters or {})
    if aspect_ratio is not None:
        parameters["aspectRatio"] = aspect_ratio
    if negative_prompt is not None:
        parameters["negativePrompt"] = negative_prompt
    if duration_seconds is not None:
        parameters["durationSeconds"] = duration_seconds
    if media is not None:
        parameters.update(media.parameters())
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if parameters:
        body["parameters"] = parameters
    if response_format is not None:
        body["response_format"] = response_format
    if app_id is not None:
        body["appId"] = app_id
    if extra:
        body.update(extra)
    return body
