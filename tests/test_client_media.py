"""The Python client's media options and outputs, and the REST-shaped call, against the live service."""

from __future__ import annotations

import pytest

from lunos_client import AsyncLunosClient, GenerationFailedError, LunosClient
from lunos_client.models import generation_body, image_input
from tests.client_support import in_thread
from tests.conftest import create_user
from tests.media_support import picture, png

pytestmark = pytest.mark.anyio

VEO31 = "google/veo-3.1-generate-001"


def test_named_options_join_the_rest_parameters() -> None:
    first = png(picture())
    body = generation_body(
        "x",
        model=VEO31,
        parameters={"aspectRatio": "9:16", "sampleCount": 1},
        aspect_ratio="16:9",
    )
    assert body == {"model": VEO31, "prompt": "x", "parameters": {"aspectRatio": "16:9", "sampleCount": 1}}
    assert image_input(first)["mimeType"] == "image/png"
    assert image_input("https://example.com/a.png") == {"url": "https://example.com/a.png"}
    with pytest.raises(ValueError):
        image_input(b"GIF89a")


async def test_sync_client_rest_shape_images_samples_and_estimate(service) -> None:
    key = await create_user(service, "py-media", "100.00")
    base = service.settings.resolved_public_base_url()

    def scenario() -> dict:
        with LunosClient(key, base_url=base) as lunos:
            quote = lunos.video.estimate("A kite", model=VEO31, sample_count=2, duration_seconds=4)
            created = lunos.video.generate_video(
                model=VEO31,
                prompt="A kite over the dunes",
                parameters={"aspectRatio": "16:9", "durationSeconds": 4},
                image=png(picture()),
                sample_count=2,
                generate_audio=True,
            )
            final = lunos.video.wait(created, poll_interval=0.1, max_wait=60)
        return locals()

    seen = await in_thread(scenario)
    assert (seen["quote"]["cost"], seen["quote"]["accepted"]) == ("3.20", True)
    final = seen["final"]
    assert final.is_completed and len(final.video_urls) == 2 and final.video_urls[0] == final.video_url
    assert final.thumbnail_url.endswith("-poster.jpg")


async def test_async_client_extends_and_sees_error_codes(service) -> None:
    key = await create_user(service, "py-media-async", "100.00")
    async with AsyncLunosClient(key, base_url=service.settings.resolved_public_base_url()) as lunos:
        source = await lunos.video.generate_and_wait(
            "A river", model=VEO31, duration_seconds=4, poll_interval=0.1, max_wait=60
        )
        extended = await lunos.video.generate_and_wait(
            "It flows on", model=VEO31, video=source.id, poll_interval=0.1, max_wait=60
        )
        assert extended.is_completed
        created = await lunos.video.generate_video("x #simulate-safety-block", model=VEO31)
        with pytest.raises(GenerationFailedError) as caught:
            await lunos.video.wait(created, poll_interval=0.1, max_wait=60)
    failed = caught.value.status
    assert (failed.error_code, failed.safety["filtered_count"]) == ("safety_filtered", 1)
