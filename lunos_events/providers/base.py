"""The provider interface: start a long-running generation, then poll it until it is done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class InputImage:
    """A checked input image: real bytes of `mime_type` (image/png, image/jpeg or image/webp)."""

    data: bytes
    mime_type: str


@dataclass(frozen=True)
class ReferenceImage:
    image: InputImage
    reference_type: str  # "asset" or "style"


@dataclass(frozen=True)
class MediaInputs:
    """What a generation starts from besides its prompt; every field optional."""

    image: InputImage | None = None  # the first frame
    last_frame: InputImage | None = None
    reference_images: tuple[ReferenceImage, ...] = ()
    video: bytes | None = None  # an MP4 to extend

    @property
    def empty(self) -> bool:
        return not (self.image or self.last_frame or self.reference_images or self.video)


NO_MEDIA = MediaInputs()


async def no_media() -> MediaInputs:
    return NO_MEDIA


# Loads the job's media inputs from storage when a provider needs them (the simulator only at render).
MediaLoader = Callable[[], Awaitable[MediaInputs]]


@dataclass(frozen=True)
class GenerationJob:
    """Everything a provider needs to start (or re-poll) one generation."""

    operation_id: str
    provider_model: str
    prompt: str
    aspect_ratio: str
    duration_seconds: int
    negative_prompt: str | None = None
    # resolution, seed, personGeneration, generateAudio, enhancePrompt: present when asked for.
    options: dict[str, Any] = field(default_factory=dict)
    sample_count: int = 1
    load_media: MediaLoader = no_media
    # The pool credential that starts it (or started it, for a poll); None: the pool's first.
    credential: str | None = None


@dataclass(frozen=True)
class Pending:
    pass


@dataclass(frozen=True)
class Done:
    """The finished videos (one per sample), as local files the caller owns (and deletes after storing)."""

    video_paths: tuple[Path, ...]

    @property
    def video_path(self) -> Path:
        return self.video_paths[0]


@dataclass(frozen=True)
class Failed:
    reason: str
    code: str = "provider_error"  # one of lunos_events.errors.ERROR_CODES
    # Safety filtering: the provider's reasons and how many videos it filtered out.
    safety_reasons: tuple[str, ...] = ()
    filtered_count: int | None = None


ProviderResult = Pending | Done | Failed


class ProviderStartError(Exception):
    """The provider refused to start the generation; the client gets 502 and a refund."""


class ProviderBusy(ProviderStartError):
    """Not started for now (429 quota, 5xx): the credential cools down and the job waits in the queue."""


class ProviderCredentialRefused(ProviderStartError):
    """The credential itself was refused (401/403): it is taken out of the pool, the job waits."""


class ProviderTransientError(Exception):
    """Polling failed for a reason that may pass (network, 5xx); tracking retries later."""


class VideoProvider(Protocol):
    async def start(self, job: GenerationJob) -> str:
        """Start a generation and return the provider's operation name."""
        ...

    async def poll(self, operation_name: str, job: GenerationJob) -> ProviderResult: ...

    async def aclose(self) -> None: ...
