"""Typed results: the status object, the submit response, stream events and pages of a listing.

Each keeps the server's JSON in `raw`, so fields added by a newer server are never lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL = "google/veo-3.0-generate-preview"
WIDESCREEN = "16:9"
MP4 = "mp4"

PENDING = "pending"
COMPLETED = "completed"
# Statuses after which nothing changes any more. Anything else (today `pending`) is in progress,
# so a server that adds an intermediate status does not end a wait early.
FINAL_STATUSES = frozenset({COMPLETED, "failed", "cancelled", "deleted"})


@dataclass(frozen=True)
class VideoStatus:
    """What `GET /v1/video/generations/{id}` returns; also the data of every stream event."""

    id: str
    status: str
    video_url: str | None = None
    error: str | None = None
    events_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_completed(self) -> bool:
        return self.status == COMPLETED

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> VideoStatus:
        return cls(
            id=body["id"],
            status=body["status"],
            video_url=body.get("video_url"),
            error=body.get("error"),
            events_url=body.get("events_url"),
            raw=body,
        )


@dataclass(frozen=True)
class VideoGeneration(VideoStatus):
    """The submit response: a pending status plus the provider's operation name."""

    operation_name: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> VideoGeneration:
        status = VideoStatus.from_json(body)
        return cls(
            id=status.id,
            status=status.status,
            video_url=status.video_url,
            error=status.error,
            events_url=status.events_url,
            raw=body,
            operation_name=body.get("operation_name"),
        )


@dataclass(frozen=True)
class VideoEvent:
    """One status change from an event stream: `id` is the account's event sequence number."""

    id: int
    type: str  # video.<status>
    status: VideoStatus

    @classmethod
    def from_sse(cls, event_id: str, event_type: str, data: str) -> VideoEvent:
        return cls(id=int(event_id), type=event_type, status=VideoStatus.from_json(json.loads(data)))


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
) -> dict[str, Any]:
    """The documented submit body; optional fields are left out so the server's defaults apply."""
    parameters: dict[str, Any] = {}
    if aspect_ratio is not None:
        parameters["aspectRatio"] = aspect_ratio
    if negative_prompt is not None:
        parameters["negativePrompt"] = negative_prompt
    if duration_seconds is not None:
        parameters["durationSeconds"] = duration_seconds
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
