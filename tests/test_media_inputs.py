"""Media inputs and outputs end to end: real HTTP, a real worker, the simulator rendering real MP4s.

Image-to-video, first + last frame, reference images, samples with a poster, audio on and off,
extending a completed video, image URLs fetched by the worker, and every refused input refused
with a 400 before anything is charged.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from lunos_events.media.images import check_image, encode_image
from lunos_events.providers.local import SAFETY_BLOCK_MARKER, START_FAILURE_MARKER
from lunos_events.services import accounts
from lunos_events.services.image_fetch import InputUnreachable, fetch_image
from lunos_events.store.models import Operation
from tests.conftest import auth, create_user
from tests.helpers import wait_for_status
from tests.loopback_server import LoopbackServer
from tests.media_support import difference, frames_rgb, image_data, picture, png, streams

pytestmark = pytest.mark.anyio

VEO31 = "google/veo-3.1-generate-001"
FAST31 = "google/veo-3.1-fast-generate-001"
PREVIEW = "google/veo-3.0-generate-preview"
CLOSE = 12.0  # mean difference per channel value (0-255) of a picture that survived video coding


def body(parameters: dict[str, Any], model: str = VEO31, prompt: str = "a red fox in the snow") -> dict:
    return {"model": model, "prompt": prompt, "parameters": {"aspectRatio": "16:9", **parameters}}


async def balance(service, account_id: str) -> int:
    return (await accounts.get_account(service.store, account_id)).balance_cents


async def generate(client: httpx.AsyncClient, key: str, payload: dict) -> tuple[dict, dict]:
    response = await client.post("/v1/video/generations", headers=auth(key), json=payload)
    assert response.status_code == 200, response.text
    final = await wait_for_status(client, response.json()["id"], auth(key))
    return response.json(), final


async def download(client: httpx.AsyncClient, url: str) -> bytes:
    response = await client.get(url)
    assert response.status_code == 200, url
    return response.content


async def test_image_to_video_starts_from_the_image(service, client) -> None:
    key = await create_user(service, "i2v", "10.00")
    first = picture()
    submitted, final = await generate(client, key, body({"image": image_data(png(first))}))
    assert final["status"] == "completed", final
    frames = frames_rgb(await download(client, final["video_url"]))
    assert difference(first, frames[0]) < CLOSE
    # It moves: later frames are not the still image.
    assert difference(first, frames[len(frames) // 2]) > 1.0
    # The inputs were kept in storage, not in the row, never served, and removed once it ended.
    op = await service.store.operation(submitted["id"])
    inputs = op.parameters["inputs"]
    assert inputs.startswith("i2v/inputs/") and "data" not in json.dumps(op.parameters)
    assert not (service.settings.videos_dir / inputs).exists()
    assert (await client.get(f"/media/{inputs}")).status_code == 404


@pytest.mark.settings(simulator_latency_seconds=30.0)
async def test_inputs_are_removed_when_the_operation_ends_any_way(service, client) -> None:
    """The request's images are the client's data: kept while the provider may need them, removed
    at the end, whether it completed, failed or was cancelled."""
    key = await create_user(service, "forgetful", "10.00")
    payload = body({"image": image_data(png(picture()))})
    response = await client.post("/v1/video/generations", headers=auth(key), json=payload)
    assert response.status_code == 200, response.text
    op = await service.store.operation(response.json()["id"])
    stored = service.settings.videos_dir / op.parameters["inputs"]
    assert stored.is_file()  # while it runs
    cancelled = await client.post(f"/v1/video/generations/{op.id}/cancel", headers=auth(key))
    assert cancelled.json()["status"] == "cancelled"
    assert not stored.exists()

    refused = body({"image": image_data(png(picture()))}, prompt=f"a fox {START_FAILURE_MARKER}")
    response = await client.post("/v1/video/generations", headers=auth(key), json=refused)
    assert response.status_code == 502, response.text
    failed = await service.store.all(
        select(Operation.parameters).where(Operation.account_id == "forgetful", Operation.status == "failed")
    )
    assert len(failed) == 1
    assert not (service.settings.videos_dir / failed[0].parameters["inputs"]).exists()
    assert await balance(service, "forgetful") == 1000  # both refunded


async def test_first_and_last_frame(service, client) -> None:
    key = await create_user(service, "frames", "10.00")
    first, last = picture(), picture(hue=120)[::-1].copy()
    assert difference(first, last) > 40  # far apart, so the test can tell them apart
    parameters = {
        "image": image_data(png(first)),
        "lastFrame": image_data(encode_image(last, "mjpeg"), "image/jpeg"),
    }
    _, final = await generate(client, key, body(parameters))
    assert final["status"] == "completed", final
    frames = frames_rgb(await download(client, final["video_url"]))
    assert difference(first, frames[0]) < CLOSE
    assert difference(last, frames[-1]) < 25  # the last frame also carries the motion overlay
    assert difference(last, frames[-1]) < difference(first, frames[-1])


async def test_two_samples_two_videos_and_a_poster_at_twice_the_price(service, client) -> None:
    key = await create_user(service, "samples", "10.00")
    submitted, final = await generate(client, key, body({"sampleCount": 2, "durationSeconds": 4}))
    assert submitted["cost"] == "3.20"  # shown as charged
    assert final["status"] == "completed", final
    assert final["video_urls"][0] == final["video_url"] and len(final["video_urls"]) == 2
    videos = [await download(client, url) for url in final["video_urls"]]
    assert videos[0] != videos[1]  # two different samples
    for video in videos:
        assert len(frames_rgb(video)) == round(
            service.settings.simulator_video_seconds * service.settings.simulator_fps
        )
    poster = await client.get(final["thumbnail_url"])
    assert poster.headers["content-type"] == "image/jpeg"
    info = check_image(poster.content, "image/jpeg")
    assert (info.width, info.height) == (service.settings.simulator_width, service.settings.simulator_height)
    # price 0.40/s x 4 s x 2 samples
    assert await balance(service, "samples") == 1000 - 320


async def test_audio_on_adds_an_aac_track_and_off_has_none(service, client) -> None:
    key = await create_user(service, "audio", "20.00")
    _, with_audio = await generate(client, key, body({"generateAudio": True}))
    _, without = await generate(client, key, body({"generateAudio": False}))
    on = streams(await download(client, with_audio["video_url"]))
    off = streams(await download(client, without["video_url"]))
    assert on["audio"] == "aac" and on["audio_frames"] > 0 and on["video"] == "h264"
    assert off["audio"] is None


async def test_resolution_is_rendered_as_asked(service, client) -> None:
    key = await create_user(service, "res", "20.00")
    _, final = await generate(
        client, key, body({"resolution": "720p", "aspectRatio": "9:16", "durationSeconds": 4})
    )
    frames = frames_rgb(await download(client, final["video_url"]))
    assert frames[0].shape[:2] == (1280, 720)


async def test_reference_images_are_shown(service, client) -> None:
    key = await create_user(service, "refs", "10.00")
    white = np.full((64, 64, 3), 255, np.uint8)
    references = [
        {"image": image_data(encode_image(white, "libwebp"), "image/webp"), "referenceType": "asset"}
    ]
    _, final = await generate(client, key, body({"referenceImages": references}))
    frames = frames_rgb(await download(client, final["video_url"]))
    # The thumbnail (a fifth of the picture, top-left corner) is white from the second frame on.
    corner = frames[1][4:30, 4:56]
    assert corner.mean() > 230, corner.mean()


async def test_extension_continues_a_completed_video_of_the_same_account(service, client) -> None:
    key = await create_user(service, "ext", "20.00")
    _, source = await generate(client, key, body({"image": image_data(png(picture()))}))
    before = await balance(service, "ext")
    _, final = await generate(client, key, body({"video": {"operationId": source["id"]}}))
    assert final["status"] == "completed", final
    # Extensions add 7 seconds at 0.40/s.
    assert await balance(service, "ext") == before - 280
    last_of_source = frames_rgb(await download(client, source["video_url"]))[-1]
    first_of_extension = frames_rgb(await download(client, final["video_url"]))[0]
    assert difference(last_of_source, first_of_extension) < CLOSE

    other = await create_user(service, "intruder", "20.00")
    response = await client.post(
        "/v1/video/generations", headers=auth(other), json=body({"video": {"operationId": source["id"]}})
    )
    assert (response.status_code, response.json()) == (404, {"error": "Operation not found"})
    assert await balance(service, "intruder") == 2000
    wrong_duration = body({"video": {"operationId": source["id"]}, "durationSeconds": 8})
    response = await client.post("/v1/video/generations", headers=auth(key), json=wrong_duration)
    assert response.status_code == 400 and "durationSeconds" in response.json()["error"]


def refused_bodies() -> list[tuple[dict, str]]:
    """(submit body, words its 400 error must contain)"""
    good = image_data(png(picture()))
    jpeg_as_png = image_data(encode_image(picture(), "mjpeg"), "image/png")
    corrupt = image_data(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    tiny = image_data(png(np.zeros((8, 8, 3), np.uint8)))
    four = [{"image": good, "referenceType": "asset"}] * 4
    return [
        (body({"lastFrame": good}), "needs 'image'"),
        (
            body({"referenceImages": [{"image": good, "referenceType": "asset"}]}, model=FAST31),
            "referenceImages",
        ),
        (body({"lastFrame": good, "image": good}, model=PREVIEW), "lastFrame"),
        (body({"video": {"operationId": "video-op:refuser:1"}}, model=PREVIEW), "'video'"),
        (body({"referenceImages": [{"image": good, "referenceType": "style"}]}), "referenceType"),
        (body({"referenceImages": four}), "referenceImages"),
        (body({"sampleCount": 5}), "sampleCount"),
        (body({"sampleCount": 0}), "sampleCount"),
        (body({"generateAudio": "yes"}), "generateAudio"),
        (body({"enhancePrompt": 1}), "enhancePrompt"),
        (body({"image": {"data": "not base64!", "mimeType": "image/png"}}), "base64"),
        (
            body({"image": {"data": base64.b64encode(b"GIF89a").decode(), "mimeType": "image/gif"}}),
            "mimeType",
        ),
        (body({"image": jpeg_as_png}), "image/png"),
        (body({"image": corrupt}), "decodable"),
        (body({"image": tiny}), "8x8"),
        (body({"image": {"url": "http://8.8.8.8/cat.png"}}), "https"),
        (body({"image": {"url": "https://127.0.0.1/cat.png"}}), "not allowed"),
        (body({"image": {"url": "https://10.1.2.3/cat.png"}}), "not allowed"),
        (body({"image": "cat.png"}), "parameters.image"),
        (body({"video": {"operationId": "video-op:refuser:1"}, "image": good}), "cannot be combined"),
    ]


@pytest.mark.settings(max_image_bytes=64 * 1024)
async def test_every_refused_input_is_a_400_before_any_charge(service, client) -> None:
    key = await create_user(service, "refuser", "10.00")
    cases = refused_bodies()
    noise = np.random.default_rng(1).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    cases.append((body({"image": image_data(png(noise))}), "larger than 65536 bytes"))
    for payload, words in cases:
        response = await client.post("/v1/video/generations", headers=auth(key), json=payload)
        assert response.status_code == 400, (payload["parameters"].keys(), response.text)
        assert words in response.json()["error"], (words, response.json())
    assert await balance(service, "refuser") == 1000
    listed = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]
    assert listed == []


@pytest.mark.settings(max_body_bytes=1024, max_image_bytes=64 * 1024)
async def test_a_submit_carrying_images_may_be_larger(service, client) -> None:
    key = await create_user(service, "big", "10.00")
    image = image_data(png(picture()))
    assert len(image["data"]) > 1024
    _, final = await generate(client, key, body({"image": image}))
    assert final["status"] == "completed"
    response = await client.post(
        "/v1/video/generations", headers=auth(key), json=body({"negativePrompt": "x" * 2000})
    )
    assert response.status_code == 413


class ImageHost:
    """Serves input images over HTTP on loopback."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.requests: list[str] = []

    async def handle(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        if request.url.path == "/cat.png":
            return Response(self.image, media_type="image/png")
        if request.url.path == "/moved":
            return RedirectResponse("/cat.png")
        if request.url.path == "/text":
            return Response(b"hello", media_type="text/plain")
        if request.url.path == "/big.png":
            noise = np.random.default_rng(2).integers(0, 255, (160, 160, 3), dtype=np.uint8)
            return Response(png(noise), media_type="image/png")
        return Response(status_code=404)


@pytest.fixture
def image_host():
    host = ImageHost(png(picture()))
    with LoopbackServer(Starlette(routes=[Route("/{path:path}", host.handle)])) as server:
        server.host = host
        yield server


@pytest.mark.settings(input_url_allow_private=True, max_image_bytes=64 * 1024)
async def test_an_image_url_is_fetched_by_the_worker(service, client, image_host) -> None:
    key = await create_user(service, "urls", "20.00")
    submitted, final = await generate(client, key, body({"image": {"url": f"{image_host.url}/moved"}}))
    assert "operation_name" not in submitted  # the worker starts it, once the image is fetched
    assert final["status"] == "completed", final
    assert image_host.host.requests == ["/moved", "/cat.png"]
    frames = frames_rgb(await download(client, final["video_url"]))
    assert difference(picture(), frames[0]) < CLOSE

    cases = (("/missing.png", "input_unreachable"), ("/text", "input_invalid"), ("/big.png", "input_invalid"))
    for path, code in cases:
        before = await balance(service, "urls")
        _, failed = await generate(client, key, body({"image": {"url": f"{image_host.url}{path}"}}))
        assert (failed["status"], failed["error_code"]) == ("failed", code), failed
        assert await balance(service, "urls") == before  # refunded


async def test_a_safety_failure_has_its_code_and_reasons(service, client) -> None:
    key = await create_user(service, "blocked", "10.00")
    _, final = await generate(client, key, body({"sampleCount": 2}, prompt=f"a fox {SAFETY_BLOCK_MARKER}"))
    final.pop("events_url")
    assert final["error_code"] == "safety_filtered"
    assert final["safety"]["filtered_count"] == 2 and final["safety"]["reasons"]
    assert final["error"].startswith("The video was blocked")
    assert await balance(service, "blocked") == 1000


async def test_the_worker_fetch_refuses_private_addresses_and_follows_redirects(image_host) -> None:
    # What the submit checked is checked again at the fetch (the name may re-resolve since).
    with pytest.raises(InputUnreachable, match="not allowed"):
        await fetch_image(
            f"{image_host.url}/cat.png".replace("http:", "https:"),
            allow_private=False,
            max_bytes=1 << 20,
            fetch_timeout_seconds=5,
        )
    with pytest.raises(InputUnreachable, match="must use https"):
        await fetch_image(
            f"{image_host.url}/cat.png", allow_private=False, max_bytes=1 << 20, fetch_timeout_seconds=5
        )
    assert image_host.host.requests == []  # nothing was sent
    data = await fetch_image(
        f"{image_host.url}/moved", allow_private=True, max_bytes=1 << 20, fetch_timeout_seconds=5
    )
    assert data == image_host.host.image


@pytest.mark.settings(simulator_latency_seconds=1.0)
async def test_inputs_gone_from_storage_fail_at_once_and_refund(service, client) -> None:
    key = await create_user(service, "vanished", "10.00")
    response = await client.post(
        "/v1/video/generations", headers=auth(key), json=body({"image": image_data(png(picture()))})
    )
    assert response.status_code == 200, response.text
    op = await service.store.operation(response.json()["id"])
    (service.settings.videos_dir / op.parameters["inputs"]).unlink()
    final = await wait_for_status(client, op.id, auth(key), timeout=10)
    assert (final["status"], final["error_code"]) == ("failed", "input_invalid"), final
    assert "inputs are gone" in final["error"]
    assert await balance(service, "vanished") == 1000
