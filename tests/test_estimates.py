"""POST /v1/video/estimates: the submit's body answered with its cost and what would be refused."""

from __future__ import annotations

import pytest

from lunos_events.services import accounts
from tests.conftest import auth, create_user
from tests.media_support import image_data, picture, png

pytestmark = pytest.mark.anyio

VEO31 = "google/veo-3.1-generate-001"


async def estimate(client, key: str, parameters: dict, model: str = VEO31) -> dict:
    body = {"model": model, "prompt": "a lighthouse", "parameters": parameters}
    response = await client.post("/v1/video/estimates", headers=auth(key), json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_estimate_prices_samples_and_charges_nothing(service, client) -> None:
    key = await create_user(service, "est", "10.00")
    answer = await estimate(client, key, {"sampleCount": 2, "image": image_data(png(picture()))})
    assert answer == {
        "model": VEO31,
        "cost": "6.40",
        "currency": "USD",
        "price_per_second": "0.40",
        "duration_seconds": 8,
        "sample_count": 2,
        "resolution": None,
        "balance": "10.00",
        "affordable": True,
        "accepted": True,
        "refused": None,
    }
    assert (await accounts.get_account(service.store, "est")).balance_cents == 1000
    assert (await client.get("/v1/video/generations", headers=auth(key))).json()["data"] == []


async def test_an_estimate_says_what_would_be_refused(service, client) -> None:
    key = await create_user(service, "est2", "5.00")
    poor = await estimate(client, key, {"sampleCount": 4})
    assert (poor["cost"], poor["accepted"]) == ("12.80", False)
    assert poor["refused"] == {"status": 402, "error": "Insufficient balance"}

    bad = await estimate(client, key, {"sampleCount": 9})
    assert (bad["cost"], bad["accepted"], bad["refused"]["status"]) == (None, False, 400)
    assert "sampleCount" in bad["refused"]["error"]
    option = await estimate(client, key, {"referenceImages": []}, model="google/veo-3.1-fast-generate-001")
    assert option["refused"] == {
        "status": 400,
        "error": "Model google/veo-3.1-fast-generate-001 does not accept 'referenceImages'",
    }
    other = await estimate(client, key, {"video": {"operationId": "video-op:someone:1"}})
    assert other["refused"] == {"status": 404, "error": "Operation not found"}
    unknown = await estimate(client, key, {}, model="acme/nothing")
    assert unknown["refused"] == {"status": 404, "error": "Model not found"}

    response = await client.post("/v1/video/estimates", json={"model": VEO31, "prompt": "x"})
    assert response.status_code == 401
