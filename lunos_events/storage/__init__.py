"""Storage factory: the settings pick one implementation; nothing else knows which."""

from __future__ import annotations

from lunos_events.settings import Settings
from lunos_events.storage.base import VideoStorage


def build_storage(settings: Settings) -> VideoStorage:
    if settings.storage == "local":
        from lunos_events.storage.local import LocalStorage

        return LocalStorage(settings.videos_dir, settings.resolved_public_base_url())
    raise ValueError(f"unknown storage {settings.storage!r} (LUNOS_STORAGE)")
