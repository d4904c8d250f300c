"""Renders a real H.264 MP4 whose picture depends on the prompt (the simulator's output)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np


def render_video(path: Path, prompt: str, *, width: int, height: int, fps: int, seconds: float) -> None:
    """Write an MP4 (yuv420p H.264) to `path`. CPU-bound: call it from a worker thread."""
    width, height = width // 2 * 2, height // 2 * 2  # 4:2:0 chroma needs even sizes
    seed = hashlib.sha256(prompt.encode()).digest()
    base_luma = 40 + seed[0] % 100
    tint_u, tint_v = 64 + seed[1] % 128, 64 + seed[2] % 128
    box = max(8, height // 6)
    speed = 2 + seed[3] % 6
    frames = max(1, round(seconds * fps))

    # Frames are built directly as yuv420p planes so no colour conversion runs per frame.
    background = (base_luma + np.linspace(0, 60, height, dtype=np.float32)).astype(np.uint8)
    picture = np.empty((height * 3 // 2, width), np.uint8)
    chroma = picture[height:]

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for index in range(frames):
            picture[:height] = background[:, None]
            chroma[: height // 4] = tint_u
            chroma[height // 4 :] = tint_v
            x = (index * speed * width // 100) % max(1, width - box)
            y = (height - box) // 2 + int((height // 4) * np.sin(index / fps * 2.0))
            picture[y : y + box, x : x + box] = 235
            progress = (index + 1) * width // frames
            picture[height - max(2, height // 60) : height, :progress] = 200
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
