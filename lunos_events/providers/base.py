"""The provider interface: start a long-running generation, then poll it until it is done."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class GenerationJob:
    """Everything a provider needs to start (or re-poll) one generation."""

    operation_id: str
    provider_model: str
    prompt: str
    aspect_ratio: str
    duration_seconds: int
    negative_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    pass


@dataclass(frozen=True)
class Done:
    """The finished video, materialised as a local file the caller owns (and deletes after storing)."""

    video_path: Path


@dataclass(frozen=True)
class Failed:
    reason: str


ProviderResult = Pending | Done | Failed


class ProviderStartError(Exception):
    """The provider refused to start the generation; the client gets 502 and a refund."""


class ProviderTransientError(Exception):
    """Polling failed for a reason that may pass (network, 5xx); tracking retries later."""


class VideoProvider(Protocol):
    async def start(self, job: GenerationJob) -> str:
        """Start a generation and return the provider's operation name."""
        ...

    async def poll(self, operation_name: str, job: GenerationJob) -> ProviderResult: ...

    async def aclose(self) -> None: ...
