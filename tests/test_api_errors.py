"""Every documented error, and every kind of bad input: a clear 4xx JSON error, never a 500."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sqlalchemy import func, select

from lunos_events.providers.local import START_FAILURE_MARKER
from lunos_events.services import accounts
from lunos_events.store.models import Operation
from tests.conftest import VEO, auth, create_user
from tests.helpers import generation_body, wait_for_status

pytestmark = pytest.mark.anyio

MISSING = {"error": "Missing required fields: model and prompt"}


async def submit(client: httpx.AsyncClient, key: str, body: object, **kwargs) -> httpx.Response:
    return await client.post("/v1/video/generations", headers=auth(key), json=body, **kwargs)


async def operation_count(service) -> int:
    async with service.store.reading() as conn:
        return (await conn.execute(select(func.count()).select_from(Operation))).scalar_one()


async def balance(service, account_id: str) -> int:
    return (await accounts.get_account(service.store, account_id)).balance_cents


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"model": VEO},
        {"prompt": "a cat"},
        {"model": None, "prompt": "a cat"},
        {"model": VEO, "prompt": None},
        {"model": "", "prompt": "a cat"},
    ],
)
async def test_missing_required_fields(service, client, body) -> None:
    key = await create_user(service, "u1")
    response = await submit(client, key, body)
    assert (response.status_code, response.json()) == (400, MISSING)


async def test_unknown_model(service, client) -> None:
    key = await create_user(service, "u1")
    response = await submit(client, key, generation_body(model="google/veo-9"))
    assert (response.status_code, response.json()) == (404, {"error": "Model not found"})


async def test_insufficient_balance_charges_nothing(service, client) -> None:
    key = await create_user(service, "poor", "3.19")
    response = await submit(client, key, generation_body())
    assert (response.status_code, response.json()) == (402, {"error": "Insufficient balance"})
    assert await balance(service, "poor") == 319
    assert await operation_count(service) == 0


async def test_provider_start_failure_is_502_and_refunded(service, client) -> None:
    key = await create_user(service, "unlucky", "5.00")
    response = await submit(client, key, generation_body(f"a cat {START_FAILURE_MARKER}"))
    assert (response.status_code, response.json()) == (502, {"error": "Failed to start video generation"})
    assert await balance(service, "unlucky") == 500
    async with service.store.reading() as conn:
        op = (await conn.execute(select(Operation))).one()
    assert (op.status, op.refunded, op.error) == ("failed", True, "Failed to start video generation")
    status = (await client.get(f"/v1/video/generations/{op.id}", headers=auth(key))).json()
    assert status.pop("events_url")
    # It never started: no started_at, and it ended when the provider refused it.
    assert status.pop("created_at") <= status.pop("completed_at")
    assert status == {
        "id": op.id,
        "status": "failed",
        "error": "Failed to start video generation",
        "error_code": "start_failed",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": 5, "prompt": "x"}, "Field 'model' must be a string"),
        ({"model": VEO, "prompt": ["x"]}, "Field 'prompt' must be a string"),
        ({"model": VEO, "prompt": ""}, "Field 'prompt' must not be empty"),
        ({"model": VEO, "prompt": "   \n"}, "Field 'prompt' must not be empty"),
        ({"model": VEO, "prompt": "x" * 4001}, "Field 'prompt' is too long (at most 4000 characters)"),
        ({"model": VEO, "prompt": "a\x00b"}, "Field 'prompt' must not contain NUL characters"),
        ({"model": VEO, "prompt": "x", "parameters": "16:9"}, "Field 'parameters' must be an object"),
        (
            {"model": VEO, "prompt": "x", "parameters": {"aspectRatio": "9:16"}},
            "Unsupported aspectRatio '9:16': supported values are 16:9",
        ),
        (
            {"model": VEO, "prompt": "x", "parameters": {"aspectRatio": 1.77}},
            "Unsupported aspectRatio 1.77: supported values are 16:9",
        ),
        (
            {"model": VEO, "prompt": "x", "parameters": {"negativePrompt": 3}},
            "Field 'negativePrompt' must be a string",
        ),
        (
            {"model": VEO, "prompt": "x", "parameters": {"durationSeconds": 5}},
            "Unsupported durationSeconds 5: this model allows 8",
        ),
        (
            {"model": VEO, "prompt": "x", "parameters": {"durationSeconds": True}},
            "Unsupported durationSeconds True: this model allows 8",
        ),
        (
            {"model": VEO, "prompt": "x", "response_format": "gif"},
            "Unsupported response_format 'gif': only mp4 is supported",
        ),
        (
            {"model": VEO, "prompt": "x", "response_format": 4},
            "Unsupported response_format 4: only mp4 is supported",
        ),
        (
            {"model": VEO, "prompt": "x", "appId": 12},
            "The app id (X-App-ID header or appId field) must be a string",
        ),
    ],
)
async def test_invalid_fields(service, client, body, message) -> None:
    key = await create_user(service, "u1")
    response = await submit(client, key, body)
    assert (response.status_code, response.json()) == (400, {"error": message})
    assert await operation_count(service) == 0
    assert await balance(service, "u1") == 10000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "Request body must be valid JSON"),
        (b"", "Request body must be valid JSON"),
        (b"\xff\xfe", "Request body must be valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (b"null", "Request body must be a JSON object"),
        (b"[" * 20000 + b"]" * 20000, "Request body must be valid JSON"),
    ],
)
async def test_malformed_bodies(service, client, content, message) -> None:
    key = await create_user(service, "u1")
    response = await client.post(
        "/v1/video/generations",
        headers={**auth(key), "Content-Type": "application/json"},
        content=content,
    )
    assert (response.status_code, response.json()) == (400, {"error": message})


@pytest.mark.settings(max_body_bytes=1024)
async def test_body_over_limit_is_413(service, client) -> None:
    key = await create_user(service, "u1")
    big = generation_body("x" * 2000)
    response = await submit(client, key, big)
    assert response.status_code == 413
    assert response.json() == {"error": "Request body too large (at most 1024 bytes)"}

    async def chunked():  # no Content-Length: the limit is enforced while reading
        for _ in range(4):
            yield b" " * 400

    response = await client.post("/v1/video/generations", headers=auth(key), content=chunked())
    assert response.status_code == 413


@pytest.mark.settings(max_body_bytes=1024)
async def test_a_declared_body_over_limit_is_refused_before_it_is_sent(service) -> None:
    """With `Expect: 100-continue`, a client waits to be invited before it uploads: a body declared
    too large gets its 413 instead of the invitation."""
    key = await create_user(service, "u1")
    url = httpx.URL(service.settings.resolved_public_base_url())
    head = (
        "POST /v1/video/generations HTTP/1.1\r\n"
        f"Host: {url.host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n"
    )
    async with await anyio.connect_tcp(url.host, url.port) as stream:
        await stream.send(head.encode())
        with anyio.fail_after(10):
            first = await stream.receive()
    assert first.startswith(b"HTTP/1.1 413 "), first[:80]


async def test_extra_fields_are_ignored_and_app_id_recorded(service, client) -> None:
    key = await create_user(service, "u1")
    body = generation_body(appId="my-video-app", user="someone", stream=True, seed=4)
    response = await submit(client, key, body)
    assert response.status_code == 200, response.text
    with_header = await client.post(
        "/v1/video/generations", headers=auth(key, "header-app"), json=generation_body(appId="body-app")
    )
    async with service.store.reading() as conn:
        apps = dict((await conn.execute(select(Operation.id, Operation.app_id))).all())
    assert apps[response.json()["id"]] == "my-video-app"
    assert apps[with_header.json()["id"]] == "header-app"


async def test_top_level_aspect_ratio_and_negative_prompt_are_accepted(service, client) -> None:
    key = await create_user(service, "u1")
    response = await submit(
        client, key, {"model": VEO, "prompt": "x", "aspectRatio": "16:9", "negativePrompt": "y"}
    )
    assert response.status_code == 200
    bad = await submit(client, key, {"model": VEO, "prompt": "x", "aspectRatio": "1:1"})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer lun_nope"}],
)
async def test_missing_or_invalid_key_is_401(service, client, headers) -> None:
    for response in (
        await client.post("/v1/video/generations", headers=headers, json=generation_body()),
        await client.get("/v1/video/generations/video-op:u:1", headers=headers),
        await client.get("/v1/account", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert set(response.json()) == {"error"}


@pytest.mark.settings(auth_cache_seconds=0)
async def test_revoked_key_is_401(service, client) -> None:
    key = await create_user(service, "u1")
    assert (await client.get("/v1/account", headers=auth(key))).status_code == 200
    await accounts.revoke_api_key(service.store, key[:12])
    response = await client.get("/v1/account", headers=auth(key))
    assert (response.status_code, response.json()) == (401, {"error": "Invalid API key"})


@pytest.mark.settings(auth_cache_seconds=1.0)
async def test_a_revoked_key_stops_working_once_the_lookup_cache_expires(service, client) -> None:
    key = await create_user(service, "u1")
    assert (await client.get("/v1/account", headers=auth(key))).status_code == 200
    await accounts.revoke_api_key(service.store, key[:12])
    revoked_at = anyio.current_time()
    # Within the cache's lifetime the process still knows the key...
    assert (await client.get("/v1/account", headers=auth(key))).status_code == 200
    await anyio.sleep(max(0.0, revoked_at + 1.05 - anyio.current_time()))
    # ...and not a moment after it: the lookup goes to the database again.
    response = await client.get("/v1/account", headers=auth(key))
    assert (response.status_code, response.json()) == (401, {"error": "Invalid API key"})
    # Unknown keys are never cached: a key made now works at once.
    fresh = await accounts.create_api_key(service.store, "u1")
    assert (await client.get("/v1/account", headers=auth(fresh))).status_code == 200


async def test_other_accounts_operations_look_unknown(service, client) -> None:
    alice = await create_user(service, "alice")
    mallory = await create_user(service, "mallory")
    op_id = (await submit(client, alice, generation_body())).json()["id"]
    await wait_for_status(client, op_id, auth(alice))
    not_found = {"error": "Operation not found"}
    for candidate in (
        op_id,
        op_id.replace("alice", "mallory"),
        "video-op:mallory:1",
        "nonsense",
        "video-op:::",
    ):
        response = await client.get(f"/v1/video/generations/{candidate}", headers=auth(mallory))
        assert (response.status_code, response.json()) == (404, not_found), candidate


async def test_unknown_routes_and_methods_answer_json(service, client) -> None:
    missing = await client.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    wrong_method = await client.delete("/v1/video/generations")
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"error": "Method Not Allowed"})


async def test_health_models_account(service, client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    models = (await client.get("/v1/models")).json()["data"]
    veo = next(m for m in models if m["id"] == VEO)
    assert veo["price_per_second"] == "0.40"
    assert veo["default_duration_seconds"] == 8
    assert veo["durations"] == [8]
    key = await create_user(service, "acct", "12.34", tier="pro")
    assert (await client.get("/v1/account", headers=auth(key))).json() == {
        "id": "acct",
        "balance": "12.34",
        "currency": "USD",
        "tier": "pro",
    }


@pytest.mark.parametrize("key", ["a" * 5000, "x/" + "\u1e70\u033a" * 200 + ".mp4", "bad%00name.mp4"])
async def test_media_odd_keys_are_404_not_500(service, client, key: str) -> None:
    response = await client.get(f"/media/{key}")
    assert response.status_code == 404
    assert response.json() == {"error": "Video not found"}
