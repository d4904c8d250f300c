"""Veo's inputs and outputs through the real google-genai SDK (Vertex AI mode) against tests/fake_google.py.

The request body Google receives is asserted field by field: the first frame, last frame and
reference images inline (bytesBase64Encoded), the video to extend, sampleCount, generateAudio and
enhancePrompt; every returned sample is stored, with a poster; failures carry their error_code.
"""

from __future__ import annotations

import base64

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests import test_veo_provider as veo
from tests.conftest import auth, create_user
from tests.fake_google import BLOCK_MARKER, SAFETY_REASON
from tests.helpers import probe_mp4, wait_for_status
from tests.loopback_server import LoopbackServer
from tests.media_support import image_data, picture, png

pytestmark = pytest.mark.anyio

# The Veo service fixtures of test_veo_provider: a fake Google on loopback and the service using it.
fake_google, veo_service, veo_client = veo.fake_google, veo.veo_service, veo.veo_client
balance = veo.balance

VEO31 = "google/veo-3.1-generate-001"
START_PATH = "v1beta1/publishers/google/models/veo-3.1-generate-001:predictLongRunning"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_images_samples_and_options_reach_google_in_its_own_fields(
    veo_service, veo_client, fake_google
) -> None:
    key = await create_user(veo_service, "veo-media", "20.00")
    first, last, asset = png(picture()), png(picture(hue=90)), png(picture(64, 64))
    parameters = {
        "aspectRatio": "16:9",
        "durationSeconds": 6,
        "resolution": "1080p",
        "seed": 7,
        "image": image_data(first),
        "lastFrame": image_data(last),
        "referenceImages": [{"image": image_data(asset), "referenceType": "asset"}],
        "sampleCount": 2,
        "generateAudio": True,
        "enhancePrompt": False,
    }
    body = {"model": VEO31, "prompt": "A paper boat", "parameters": parameters}
    response = await veo_client.post("/v1/video/generations", headers=auth(key), json=body)
    assert response.status_code == 200, response.text
    submitted = response.json()
    assert await balance(veo_service, "veo-media") == 2000 - 40 * 6 * 2
    fake = fake_google.fake
    assert fake.paths[0] == START_PATH
    assert fake.start_requests == [
        {
            "instances": [
                {
                    "prompt": "A paper boat",
                    "image": {"bytesBase64Encoded": b64(first), "mimeType": "image/png"},
                    "lastFrame": {"bytesBase64Encoded": b64(last), "mimeType": "image/png"},
                    # The SDK's own enum (VideoGenerationReferenceType.ASSET) is what goes on the wire.
                    "referenceImages": [
                        {
                            "image": {"bytesBase64Encoded": b64(asset), "mimeType": "image/png"},
                            "referenceType": "ASSET",
                        }
                    ],
                }
            ],
            "parameters": {
                "sampleCount": 2,
                "durationSeconds": 6,
                "seed": 7,
                "aspectRatio": "16:9",
                "resolution": "1080p",
                "enhancePrompt": False,
                "generateAudio": True,
            },
        }
    ]

    final = await wait_for_status(veo_client, submitted["id"], auth(key))
    assert final["status"] == "completed", final
    name = submitted["operation_name"].rsplit("/", 1)[-1]
    assert len(final["video_urls"]) == 2 and final["video_urls"][0] == final["video_url"]
    for url, sample in zip(final["video_urls"], [name, f"{name}-2"], strict=True):
        video = (await veo_client.get(url)).content
        assert video == fake.videos[sample]  # each sample Google returned, in order
        assert probe_mp4(video)["codec"] == "h264"
    poster = await veo_client.get(final["thumbnail_url"])
    assert poster.headers["content-type"] == "image/jpeg" and poster.content[:3] == b"\xff\xd8\xff"


async def test_extension_sends_the_stored_video(veo_service, veo_client, fake_google) -> None:
    key = await create_user(veo_service, "veo-ext", "20.00")
    body = {"model": VEO31, "prompt": "A paper boat", "parameters": {"durationSeconds": 4}}
    first = (await veo_client.post("/v1/video/generations", headers=auth(key), json=body)).json()
    source = await wait_for_status(veo_client, first["id"], auth(key))
    stored = (await veo_client.get(source["video_url"])).content

    extend = {"model": VEO31, "prompt": "It sails on", "parameters": {"video": {"operationId": first["id"]}}}
    response = await veo_client.post("/v1/video/generations", headers=auth(key), json=extend)
    assert response.status_code == 200, response.text
    sent = fake_google.fake.start_requests[-1]
    assert sent["instances"] == [
        {"prompt": "It sails on", "video": {"bytesBase64Encoded": b64(stored), "mimeType": "video/mp4"}}
    ]
    assert sent["parameters"]["durationSeconds"] == 7
    final = await wait_for_status(veo_client, response.json()["id"], auth(key))
    assert final["status"] == "completed", final


async def test_safety_filtering_keeps_googles_reasons_and_count(veo_service, veo_client) -> None:
    key = await create_user(veo_service, "veo-safety", "20.00")
    body = {"model": VEO31, "prompt": f"x {BLOCK_MARKER}", "parameters": {"sampleCount": 3}}
    op_id = (await veo_client.post("/v1/video/generations", headers=auth(key), json=body)).json()["id"]
    final = await wait_for_status(veo_client, op_id, auth(key))
    final.pop("events_url")
    assert final.pop("created_at") <= final.pop("started_at") <= final.pop("completed_at")
    assert final == {
        "id": op_id,
        "status": "failed",
        "error": f"The video was blocked by the provider's safety filters: {SAFETY_REASON}",
        "error_code": "safety_filtered",
        "safety": {"reasons": [SAFETY_REASON], "filtered_count": 3},
    }
    assert await balance(veo_service, "veo-safety") == 2000


async def test_an_operation_google_forgot_is_provider_lost(veo_service, veo_client, fake_google) -> None:
    key = await create_user(veo_service, "veo-lost", "20.00")
    fake_google.fake.latency_seconds = 30
    body = {"model": VEO31, "prompt": "A paper boat"}
    op_id = (await veo_client.post("/v1/video/generations", headers=auth(key), json=body)).json()["id"]
    fake_google.fake.forget_all()
    final = await wait_for_status(veo_client, op_id, auth(key))
    assert (final["status"], final["error_code"]) == ("failed", "provider_lost")


@pytest.mark.settings(input_url_allow_private=True)
async def test_an_image_url_is_fetched_then_sent_inline(veo_service, veo_client, fake_google) -> None:
    image = png(picture(hue=30))

    async def serve(request: Request) -> Response:
        return Response(image, media_type="image/png")

    with LoopbackServer(Starlette(routes=[Route("/first.png", serve)])) as host:
        key = await create_user(veo_service, "veo-url", "20.00")
        body = {"model": VEO31, "prompt": "A kite", "parameters": {"image": {"url": f"{host.url}/first.png"}}}
        response = await veo_client.post("/v1/video/generations", headers=auth(key), json=body)
        assert response.status_code == 200, response.text
        assert "operation_name" not in response.json()
        final = await wait_for_status(veo_client, response.json()["id"], auth(key))
    assert final["status"] == "completed", final
    sent = fake_google.fake.start_requests[-1]["instances"][0]
    assert sent["image"] == {"bytesBase64Encoded": b64(image), "mimeType": "image/png"}
