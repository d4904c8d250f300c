"""The local simulator: behaves like a Veo long-running operation and renders a real MP4."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import anyio

from lunos_events.ids import random_below
from lunos_events.providers.base import (
    Done,
    Failed,
    GenerationJob,
    Pending,
    ProviderResult,
    ProviderStartError,
)
from lunos_events.providers.render import render_video

# Prompts containing these markers exercise the failure paths end to end without a real provider.
START_FAILURE_MARKER = "#simulate-start-failure"
SAFETY_BLOCK_MARKER = "#simulate-safety-block"


class LocalSimulator:
    """Stateless: the operation name carries its start time, so any process can poll it."""

    def __init__(
        self,
        work_dir: Path,
        *,
        latency_seconds: float,
        width: int,
        height: int,
        fps: int,
        video_seconds: float | None,
    ) -> None:
        self._work_dir = work_dir
        self._latency_ms = int(latency_seconds * 1000)
        self._width, self._height, self._fps = width, height, fps
        self._video_seconds = video_seconds

    async def start(self, job: GenerationJob) -> str:
        if START_FAILURE_MARKER in job.prompt:
            raise ProviderStartError("simulated start failure")
        started_ms = time.time_ns() // 1_000_000
        return f"operations/{job.provider_model}/{started_ms:013d}{random_below(10**6):06d}"

    async def poll(self, operation_name: str, job: GenerationJob) -> ProviderResult:
        started_ms = int(operation_name.rsplit("/", 1)[-1][:13])
        if time.time_ns() // 1_000_000 - started_ms < self._latency_ms:
            return Pending()
        if SAFETY_BLOCK_MARKER in job.prompt:
            return Failed("The video was blocked by the provider's safety filters.")
        return Done(await anyio.to_thread.run_sync(self._render, job))

    def _render(self, job: GenerationJob) -> Path:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(suffix=".mp4", dir=self._work_dir)
        os.close(handle)
        path = Path(name)
        try:
            render_video(
                path,
                job.prompt,
                width=self._width,
                height=self._height,
                fps=self._fps,
                seconds=self._video_seconds or job.duration_seconds,
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def aclose(self) -> None:
        return None
