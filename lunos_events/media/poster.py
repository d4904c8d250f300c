"""The poster of a finished video: its first frame as a JPEG, stored beside the video."""

from __future__ import annotations

from pathlib import Path

import av

from lunos_events.media.images import encode_frame

POSTER_CONTENT_TYPE = "image/jpeg"


def make_poster(video: Path, poster: Path) -> None:
    """Write the first decoded frame of `video` to `poster` as a JPEG. CPU-bound: use a thread."""
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0))
        poster.write_bytes(encode_frame(frame, "mjpeg"))
