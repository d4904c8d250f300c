"""Provider factory: the settings pick one implementation; nothing else knows which."""

from __future__ import annotations

from lunos_events.providers.base import VideoProvider
from lunos_events.settings import Settings


def build_provider(settings: Settings) -> VideoProvider:
    name = settings.resolved_provider()
    if name == "local":
        from lunos_events.providers.local import LocalSimulator

        return LocalSimulator(
            settings.data_dir / "tmp",
            latency_seconds=settings.simulator_latency_seconds,
            width=settings.simulator_width,
            height=settings.simulator_height,
            fps=settings.simulator_fps,
            video_seconds=settings.simulator_video_seconds,
        )
    if name == "google":
        from lunos_events.providers.veo import VeoConfig, VeoProvider

        if settings.google_genai_use_vertexai is False:
            # google-genai 3.x offers generate_videos in Vertex AI mode only.
            raise ValueError(
                "Veo needs Vertex AI mode: unset GOOGLE_GENAI_USE_VERTEXAI=false and use a Vertex AI "
                "express-mode API key (GOOGLE_API_KEY) or GOOGLE_CLOUD_PROJECT with application credentials"
            )
        if not (
            settings.google_api_key
            or settings.google_cloud_project
            or settings.google_base_url
            or settings.google_credentials
        ):
            raise ValueError("LUNOS_PROVIDER=google needs GOOGLE_API_KEY or GOOGLE_CLOUD_PROJECT")
        from lunos_events.providers.pool import ProviderPool

        providers: dict[str, VideoProvider] = {}
        for credential in settings.provider_credentials():
            providers[credential.name] = VeoProvider(
                VeoConfig(
                    api_key=credential.api_key,
                    project=credential.project,
                    location=credential.location,
                    base_url=settings.google_base_url,
                    start_attempts=settings.google_start_attempts,
                    retry_initial_seconds=settings.google_retry_initial_seconds,
                    retry_max_seconds=settings.google_retry_max_seconds,
                    request_timeout_seconds=settings.google_request_timeout_seconds,
                ),
                settings.data_dir / "tmp",
            )
        return ProviderPool(providers)
    raise ValueError(f"unknown provider {name!r} (LUNOS_PROVIDER)")
