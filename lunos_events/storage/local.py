"""Local-disk storage; the app serves the files under /media with Range support."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import anyio

MEDIA_PREFIX = "/media/"


class LocalStorage:
    def __init__(self, root: Path, public_base_url: str) -> None:
        self.root = root.resolve()
        self._base = public_base_url.rstrip("/") + MEDIA_PREFIX

    async def save(self, key: str, source: Path) -> None:
        await anyio.to_thread.run_sync(self._copy, key, source)

    def _copy(self, key: str, source: Path) -> None:
        target = self.path_for(key)
        if target is None:
            raise ValueError(f"invalid storage key {key!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        os.replace(partial, target)  # readers never see a half-written video

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        if path is not None:
            await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def url_for(self, key: str) -> str:
        return self._base + quote(key)

    async def refresh_url(self, key: str, url: str) -> str | None:
        return None  # local URLs never expire

    def path_for(self, key: str) -> Path | None:
        """The file for `key`, or None when the key would escape the storage root."""
        path = (self.root / key).resolve()
        return path if path.is_relative_to(self.root) and path != self.root else None

    async def aclose(self) -> None:
        return None
