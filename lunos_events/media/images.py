"""Input images: checked to be a real image of the declared type, decoded with PyAV (FFmpeg).

The checks run before anything is charged: a header that matches the declared MIME type, a
picture FFmpeg can decode, and dimensions within limits. CPU-bound: call from a worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np

# MIME type -> FFmpeg's single-image demuxer for it.
IMAGE_FORMATS = {"image/png": "png_pipe", "image/jpeg": "jpeg_pipe", "image/webp": "webp_pipe"}
MIN_SIDE = 16
MAX_SIDE = 8192


class ImageProblem(ValueError):
    """The bytes are not a usable image of the declared type; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int


def _header_matches(data: bytes, mime_type: str) -> bool:
    if mime_type == "image/png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if mime_type == "image/jpeg":
        return data.startswith(b"\xff\xd8\xff")
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _first_frame(data: bytes, mime_type: str) -> av.VideoFrame:
    try:
        with av.open(io.BytesIO(data), mode="r", format=IMAGE_FORMATS[mime_type]) as container:
            for frame in container.decode(video=0):
                return frame
    except (av.FFmpegError, ValueError, IndexError):
        # The decoder's own words (errno, codec internals) would tell a client nothing it can act on.
        raise ImageProblem(f"is not a decodable {mime_type} image (it is damaged or cut short)") from None
    raise ImageProblem(f"is not a decodable {mime_type} image (it holds no picture)")


def check_image(data: bytes, mime_type: str) -> ImageInfo:
    """The image's size, once it is known to be a real `mime_type` image within the limits."""
    if mime_type not in IMAGE_FORMATS:
        raise ImageProblem(f"has an unsupported mimeType {mime_type!r} (use {', '.join(IMAGE_FORMATS)})")
    if not _header_matches(data, mime_type):
        raise ImageProblem(f"is not a {mime_type} image (its bytes do not start like one)")
    frame = _first_frame(data, mime_type)
    if not (MIN_SIDE <= frame.width <= MAX_SIDE and MIN_SIDE <= frame.height <= MAX_SIDE):
        raise ImageProblem(
            f"is {frame.width}x{frame.height}; each side must be {MIN_SIDE} to {MAX_SIDE} pixels"
        )
    return ImageInfo(frame.width, frame.height)


def image_planes(data: bytes, mime_type: str, width: int, height: int) -> np.ndarray:
    """The image scaled to width x height as one yuv420p array (luma rows, then chroma rows)."""
    frame = _first_frame(data, mime_type)
    return frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()


# The pixel format each image encoder takes.
ENCODER_PIXELS = {"png": "rgb24", "mjpeg": "yuvj420p", "libwebp": "yuv420p"}


def encode_image(rgb: np.ndarray, codec: str = "png") -> bytes:
    """An RGB array (h, w, 3) as PNG (codec "png"), JPEG ("mjpeg") or WebP ("libwebp") bytes."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
    return encode_frame(frame, codec)


def encode_frame(frame: av.VideoFrame, codec: str) -> bytes:
    context = cast(av.VideoCodecContext, av.CodecContext.create(codec, "w"))
    context.width, context.height = frame.width // 2 * 2, frame.height // 2 * 2
    context.pix_fmt = ENCODER_PIXELS[codec]
    context.time_base = Fraction(1, 1)
    picture = frame.reformat(width=context.width, height=context.height, format=context.pix_fmt)
    packets = [*context.encode(picture), *context.encode(None)]
    return b"".join(bytes(p) for p in packets)


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type the bytes start like (PNG, JPEG, WebP), or None."""
    for mime_type in IMAGE_FORMATS:
        if _header_matches(data, mime_type):
            return mime_type
    return None
