"""Writing a downloaded video: to a temporary file beside the target, renamed into place at the end.

A broken download therefore never leaves a truncated file under the requested name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from lunos_client.errors import APIConnectionError, GenerationFailedError, VideoNotReadyError
from lunos_client.models import VideoStatus

CHUNK_BYTES = 64 * 1024
# Called with (bytes written so far, total bytes or None when the server did not say).
ProgressCallback = Callable[[int, int | None], None]


def video_url_of(status: VideoStatus) -> str:
    if status.is_completed and status.video_url:
        return status.video_url
    if status.is_final:
        raise GenerationFailedError(status)
    raise VideoNotReadyError(f"{status.id} is {status.status}: there is no video to download yet")


class VideoFile:
    """The file being written; `commit()` moves it into place, `discard()` removes it."""

    def __init__(self, path: str | os.PathLike[str], progress: ProgressCallback | None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        self._file = os.fdopen(fd, "wb")
        self._temp = Path(temp)
        self._progress = progress
        self.total: int | None = None
        self.written = 0

    def start(self, response: httpx.Response) -> None:
        length = response.headers.get("content-length")
        self.total = int(length) if length and length.isdigit() else None
        self._report()

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.written += len(chunk)
        self._report()

    def commit(self) -> Path:
        self._file.close()
        if self.total is not None and self.written != self.total:
            self.discard()
            raise APIConnectionError(f"download ended after {self.written} of {self.total} bytes")
        os.replace(self._temp, self.path)
        return self.path

    def discard(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.written, self.total)


def broken_download(exc: httpx.TransportError) -> APIConnectionError:
    return APIConnectionError(f"the download broke off: {type(exc).__name__}: {exc}")
