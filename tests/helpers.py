"""Small helpers the tests share."""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx

from tests.conftest import VEO, auth


def generation_body(
    prompt: str = "A cinematic shot of a majestic lion in the savannah.", **extra: Any
) -> dict:
    return {
        "model": VEO,
        "prompt": prompt,
        "parameters": {"aspectRatio": "16:9", "negativePrompt": "cartoon, drawing, low quality"},
        "response_format": "mp4",
        **extra,
    }


async def submit_generation(client: httpx.AsyncClient, key: str) -> str:
    """Submit `generation_body()` for the key's account; returns the new operation's id."""
    response = await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    assert response.status_code == 200, response.text
    return response.json()["id"]


def status_without_link(body: dict[str, Any]) -> dict[str, Any]:
    """A status response as events and webhooks carry it: without the per-response `events_url`."""
    return {k: v for k, v in body.items() if k != "events_url"}


async def wait_for_status(
    client: httpx.AsyncClient, op_id: str, headers: dict[str, str], *, timeout: float = 30
) -> dict[str, Any]:
    """Poll until the operation has ended; returns the final status object."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/v1/video/generations/{op_id}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] not in ("pending", "processing"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{op_id} still {body['status']} after {timeout}s")
        await anyio.sleep(0.05)


def probe_mp4(data: bytes) -> dict[str, Any]:
    """Open MP4 bytes with FFmpeg (PyAV) and decode every frame: a real, playable video or an error."""
    import io

    import av

    with av.open(io.BytesIO(data), format="mp4") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "width": stream.width,
            "height": stream.height,
            "seconds": float(container.duration) / 1_000_000,
            "frames": frames,
        }
