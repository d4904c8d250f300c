"""Provider factory: the settings pick one implementation; nothing else knows which."""

from __future__ import annotations

from lunos_events.providers.base import VideoProvider
from lunos_events.settings import Settings


def build_provider(settings: Settings) -> VideoProvider:
    if settings.provider == "local":
        from lunos_events.providers.local import LocalSimulator

        return LocalSimulator(
            settings.data_dir / "tmp",
            latency_seconds=settings.simulator_latency_seconds,
            width=settings.simulator_width,
            height=settings.simulator_height,
            fps=settings.simulator_fps,
            video_seconds=settings.simulator_video_seconds,
        )
    raise ValueError(f"unknown provider {settings.provider!r} (LUNOS_PROVIDER)")
