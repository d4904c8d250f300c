"""Storage factory: the settings pick one implementation; nothing else knows which."""

from __future__ import annotations

from lunos_events.settings import Settings
from lunos_events.storage.base import VideoStorage


def build_storage(settings: Settings) -> VideoStorage:
    if settings.storage == "local":
        from lunos_events.storage.local import LocalStorage

        return LocalStorage(settings.videos_dir, settings.resolved_public_base_url())
    if settings.storage == "r2":
        from lunos_events.storage.r2 import R2Config, R2Storage

        if not settings.r2_endpoint_url or not settings.r2_bucket:
            raise ValueError("LUNOS_STORAGE=r2 needs LUNOS_R2_ENDPOINT_URL and LUNOS_R2_BUCKET")
        return R2Storage(
            R2Config(
                endpoint_url=settings.r2_endpoint_url,
                bucket=settings.r2_bucket,
                access_key_id=settings.r2_access_key_id,
                secret_access_key=settings.r2_secret_access_key,
                region=settings.r2_region,
                public_base_url=settings.r2_public_base_url,
                presign_expiry_seconds=settings.r2_presign_expiry_seconds,
                presign_refresh_seconds=settings.r2_presign_refresh_seconds,
                multipart_threshold_bytes=settings.r2_multipart_threshold_bytes,
                multipart_chunk_bytes=settings.r2_multipart_chunk_bytes,
                max_attempts=settings.r2_max_attempts,
            )
        )
    raise ValueError(f"unknown storage {settings.storage!r} (LUNOS_STORAGE)")
