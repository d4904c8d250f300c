"""Renders a real H.264 MP4 whose picture depends on the prompt (the simulator's output).

With a first frame it starts from that picture and, with a last frame, fades toward it; reference
images are shown as thumbnails along the top; each sample number moves differently; `audio` adds
an AAC tone track.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48_000
AUDIO_FRAME = 1024


@dataclass(frozen=True)
class Pictures:
    """Pictures the video is made from, as yuv420p planes (h * 3 / 2 rows of w) at the video size."""

    first: np.ndarray | None = None
    last: np.ndarray | None = None
    # Smaller yuv420p planes, pasted along the top from the second frame on.
    references: tuple[np.ndarray, ...] = ()


NO_PICTURES = Pictures()


def render_video(
    path: Path,
    prompt: str,
    *,
    width: int,
    height: int,
    fps: int,
    seconds: float,
    sample: int = 0,
    pictures: Pictures = NO_PICTURES,
    audio: bool = False,
) -> None:
    """Write an MP4 (yuv420p H.264, AAC with `audio`) to `path`. CPU-bound: call it from a worker thread."""
    width, height = even(width), even(height)  # 4:2:0 chroma needs even sizes
    seed = hashlib.sha256(prompt.encode() + (f"#{sample}".encode() if sample else b"")).digest()
    base_luma = 40 + seed[0] % 100
    tint_u, tint_v = 64 + seed[1] % 128, 64 + seed[2] % 128
    box = max(8, height // 6)
    speed = 2 + seed[3] % 6
    frames = max(1, round(seconds * fps))

    # Frames are built directly as yuv420p planes so no colour conversion runs per frame.
    background = np.empty((height * 3 // 2, width), np.uint8)
    background[:height] = (base_luma + np.linspace(0, 60, height, dtype=np.float32)).astype(np.uint8)[:, None]
    background[height : height + height // 4] = tint_u
    background[height + height // 4 :] = tint_v
    first = pictures.first if pictures.first is not None else background
    picture = np.empty_like(background)

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        # Every stream is added before the first packet: muxing writes the header then.
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        for index in range(frames):
            if pictures.last is not None and frames > 1:
                t = index / (frames - 1)
                picture[:] = (first * (1 - t) + pictures.last * t).astype(np.uint8)
            else:
                picture[:] = first
            # A given first frame is shown as it is; the motion starts on the next frame.
            if pictures.first is None or index > 0:
                x = (index * speed * width // 100) % max(1, width - box)
                y = (height - box) // 2 + int((height // 4) * np.sin(index / fps * 2.0 + sample))
                picture[y : y + box, x : x + box] = 235
                progress = (index + 1) * width // frames
                picture[height - max(2, height // 60) : height, :progress] = 200
                paste_thumbnails(picture, height, pictures.references)
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            add_tone(container, sound, 220 + seed[4] * 2, frames / fps)


def even(n: int) -> int:
    return max(2, n // 2 * 2)


def paste_thumbnails(picture: np.ndarray, height: int, thumbnails: tuple[np.ndarray, ...]) -> None:
    """Paste yuv420p thumbnails side by side from the top-left corner (luma and both chroma planes)."""
    width = picture.shape[1]
    x = 0
    for thumb in thumbnails:
        th, tw = thumb.shape[0] * 2 // 3, thumb.shape[1]
        if x + tw > width or th > height:
            break
        picture[:th, x : x + tw] = thumb[:th]
        # Chroma: each plane is h/4 rows of the full width (two half-width rows per row).
        for plane in range(2):
            src = thumb[th + plane * th // 4 : th + (plane + 1) * th // 4].reshape(th // 2, tw // 2)
            dst = picture[height + plane * height // 4 : height + (plane + 1) * height // 4]
            dst.reshape(height // 2, width // 2)[: th // 2, x // 2 : (x + tw) // 2] = src
        x += tw


def add_tone(
    container: av.container.OutputContainer, stream: av.AudioStream, frequency: float, seconds: float
) -> None:
    total = int(seconds * AUDIO_RATE)
    for start in range(0, total, AUDIO_FRAME):
        t = np.arange(start, min(total, start + AUDIO_FRAME)) / AUDIO_RATE
        samples = (0.2 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
