"""The local simulator: behaves like a Veo long-running operation and renders a real MP4."""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import anyio
import av
import numpy as np

from lunos_events.errors import SAFETY_FILTERED
from lunos_events.ids import random_below
from lunos_events.media.images import image_planes
from lunos_events.providers.base import (
    Done,
    Failed,
    GenerationJob,
    InputImage,
    MediaInputs,
    Pending,
    ProviderResult,
    ProviderStartError,
)
from lunos_events.providers.render import Pictures, even, render_video

# Prompts containing these markers exercise the failure paths end to end without a real provider.
START_FAILURE_MARKER = "#simulate-start-failure"
SAFETY_BLOCK_MARKER = "#simulate-safety-block"
SAFETY_REASON = "The simulator filtered this prompt (#simulate-safety-block)."
# Heights of the resolutions a request may name; the width follows the aspect ratio.
RESOLUTION_HEIGHTS = {"720p": 720, "1080p": 1080, "4k": 2160}


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
            return Failed(
                "The video was blocked by the provider's safety filters.",
                code=SAFETY_FILTERED,
                safety_reasons=(SAFETY_REASON,),
                filtered_count=job.sample_count,
            )
        media = await job.load_media()
        return Done(await anyio.to_thread.run_sync(self._render_all, job, media))

    def size(self, job: GenerationJob) -> tuple[int, int]:
        """The requested resolution in the requested aspect ratio, else the configured size."""
        height = RESOLUTION_HEIGHTS.get(job.options.get("resolution", ""))
        if height is None:
            return self._width, self._height
        across, down = (int(n) for n in job.aspect_ratio.split(":"))
        if across >= down:
            return even(height * across // down), height
        return height, even(height * down // across)

    def _render_all(self, job: GenerationJob, media: MediaInputs) -> tuple[Path, ...]:
        width, height = self.size(job)
        pictures = _pictures(media, width, height)
        paths: list[Path] = []
        try:
            for sample in range(job.sample_count):
                paths.append(self._render(job, sample, width, height, pictures))
        except BaseException:
            for path in paths:
                path.unlink(missing_ok=True)
            raise
        return tuple(paths)

    def _render(self, job: GenerationJob, sample: int, width: int, height: int, pictures: Pictures) -> Path:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(suffix=".mp4", dir=self._work_dir)
        os.close(handle)
        path = Path(name)
        try:
            render_video(
                path,
                job.prompt,
                width=width,
                height=height,
                fps=self._fps,
                seconds=self._video_seconds or job.duration_seconds,
                sample=sample,
                pictures=pictures,
                audio=bool(job.options.get("generateAudio")),
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def aclose(self) -> None:
        return None


def _pictures(media: MediaInputs, width: int, height: int) -> Pictures:
    """The inputs as planes at the video's size: an extension starts from the video's last frame."""
    first = _planes(media.image, width, height)
    if media.video is not None:
        first = last_frame_planes(media.video, width, height)
    thumb_w, thumb_h = width // 5 // 4 * 4, height // 5 // 4 * 4
    references = tuple(
        image_planes(r.image.data, r.image.mime_type, thumb_w, thumb_h)
        for r in media.reference_images
        if thumb_w and thumb_h
    )
    return Pictures(first, _planes(media.last_frame, width, height), references)


def _planes(image: InputImage | None, width: int, height: int) -> np.ndarray | None:
    return None if image is None else image_planes(image.data, image.mime_type, width, height)


def last_frame_planes(video: bytes, width: int, height: int) -> np.ndarray:
    """The last picture of an MP4, as yuv420p planes at width x height."""
    last = None
    with av.open(io.BytesIO(video), mode="r", format="mp4") as container:
        for frame in container.decode(video=0):
            last = frame
    if last is None:
        raise ValueError("the video to extend has no picture")
    return last.reformat(width=width, height=height, format="yuv420p").to_ndarray()
