"""Pictures for media-input tests: real PNG/JPEG/WebP images, and what a returned MP4 shows."""

from __future__ import annotations

import base64
import io
from typing import Any

import av
import numpy as np

from lunos_events.media.images import encode_image


def picture(width: int = 320, height: int = 180, hue: int = 0) -> np.ndarray:
    """A smooth RGB picture with a few flat blocks (video coding keeps it close)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = ((x * 200 + hue) % 256).astype(np.uint8)
    rgb[..., 1] = (y * 200).astype(np.uint8)
    rgb[..., 2] = ((1 - x) * 180 + 40 - hue // 2).astype(np.uint8)
    rgb[height // 4 : height // 2, width // 5 : width // 3] = (250, 250, 40)
    return rgb


def png(rgb: np.ndarray) -> bytes:
    return encode_image(rgb, "png")


def image_data(data: bytes, mime_type: str = "image/png") -> dict[str, str]:
    return {"data": base64.b64encode(data).decode(), "mimeType": mime_type}


def frames_rgb(video: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(video), format="mp4") as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference per channel value (0-255), the pictures brought to a's size."""
    if a.shape != b.shape:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(b), format="rgb24")
        b = frame.reformat(width=a.shape[1], height=a.shape[0]).to_ndarray()
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def streams(video: bytes) -> dict[str, Any]:
    """The codec of each kind of stream in an MP4 (audio: None when there is none)."""
    with av.open(io.BytesIO(video), format="mp4") as container:
        audio = container.streams.audio
        return {
            "video": container.streams.video[0].codec_context.name,
            "audio": audio[0].codec_context.name if audio else None,
            "audio_frames": sum(1 for _ in container.decode(audio=0)) if audio else 0,
        }
