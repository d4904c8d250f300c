"""The storage interface: keep a finished video under a key and hand out a URL for it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

VIDEO_CONTENT_TYPE = "video/mp4"


class VideoStorage(Protocol):
    async def save(self, key: str, source: Path, content_type: str = VIDEO_CONTENT_TYPE) -> None:
        """Store `source` under `key`; saving the same key again overwrites (jobs may re-run)."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store small `data` (an operation's inputs) under `key`, overwriting."""
        ...

    async def read(self, key: str) -> bytes:
        """What is stored under `key`; FileNotFoundError when nothing is."""
        ...

    async def delete(self, key: str) -> None:
        """Remove what is under `key`; a key that holds nothing is not an error (deletes repeat)."""
        ...

    async def url_for(self, key: str) -> str: ...

    async def refresh_url(self, key: str, url: str) -> str | None:
        """A new URL for `key` when `url` is about to stop working (presigned), else None."""
        ...

    async def aclose(self) -> None: ...
