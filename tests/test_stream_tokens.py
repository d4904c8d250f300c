"""Stream tokens over real HTTP: scope, expiry and tampering are enforced; CORS for other origins."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lunos_events.ids import api_key_hash
from lunos_events.streams.tokens import StreamTokenSigner
from tests.conftest import auth, create_user
from tests.helpers import generation_body
from tests.sse import SseReader

pytestmark = pytest.mark.anyio


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def events_path(op_id: str, token: str) -> str:
    return f"/v1/video/generations/{op_id}/events?token={token}"


async def submit(client: httpx.AsyncClient, key: str, app_id: str | None = None) -> dict:
    response = await client.post("/v1/video/generations", headers=auth(key, app_id), json=generation_body())
    assert response.status_code == 200, response.text
    return response.json()


async def first_event_status(client: httpx.AsyncClient, path: str) -> str:
    async with client.stream("GET", path) as response:
        assert response.status_code == 200
        return (await SseReader(response).next()).json()["status"]


async def test_tokens_open_only_their_own_stream(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "scoped")
    mine, other = await submit(client, key), await submit(client, key)
    op_token = token_of(mine["events_url"])

    # The status response carries a fresh token too, and both open the operation's stream.
    polled = (await client.get(f"/v1/video/generations/{mine['id']}", headers=auth(key))).json()
    for token in (op_token, token_of(polled["events_url"])):
        assert await first_event_status(client, events_path(mine["id"], token)) in ("processing", "completed")

    # An operation's token opens neither another operation of the same account nor the account stream.
    response = await client.get(events_path(other["id"], op_token))
    assert response.status_code == 403 and "error" in response.json()
    response = await client.get(f"/v1/video/events?token={op_token}")
    assert response.status_code == 403 and "error" in response.json()

    # An account token opens the account stream and every operation of the account.
    account_token = (await client.post("/v1/video/stream-tokens", headers=auth(key))).json()["token"]
    async with client.stream("GET", f"/v1/video/events?token={account_token}") as response:
        assert response.status_code == 200
    assert await first_event_status(client, events_path(other["id"], account_token)) in (
        "processing",
        "completed",
    )


async def test_app_scoped_account_tokens(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "multi-app")
    in_app, elsewhere = await submit(client, key, "app-a"), await submit(client, key, "app-b")
    minted = await client.post("/v1/video/stream-tokens", headers=auth(key), json={"app_id": "app-a"})
    assert minted.status_code == 200 and minted.json()["app_id"] == "app-a"
    token = minted.json()["token"]
    assert minted.json()["events_url"].endswith(f"/v1/video/events?token={token}")

    async with client.stream("GET", f"/v1/video/events?token={token}&last_event_id=0") as response:
        assert response.status_code == 200
        assert (await SseReader(response).next()).json()["id"] == in_app["id"]  # app-b's event skipped
    assert (await client.get(f"/v1/video/events?token={token}&app_id=app-b")).status_code == 403
    assert (await client.get(events_path(elsewhere["id"], token))).status_code == 403
    assert await first_event_status(client, events_path(in_app["id"], token)) in ("processing", "completed")


async def test_expired_tampered_and_foreign_tokens_are_refused(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "victim")
    intruder = await create_user(service, "intruder")
    op_id = (await submit(client, key))["id"]
    settings = service.settings
    signer = StreamTokenSigner(settings.stream_token_secret, settings.stream_token_ttl_seconds)
    expired = signer.for_operation(
        "victim", op_id, key_hash=api_key_hash(key), expires_at=int(time.time()) - 1
    )
    valid = signer.for_operation("victim", op_id, key_hash=api_key_hash(key))
    payload, _, signature = valid.partition(".")
    forged = StreamTokenSigner("f" * 64, 60).for_operation("victim", op_id, key_hash=api_key_hash(key))
    # A token for the intruder's own account stream must not reach the victim's operation.
    intruders = (await client.post("/v1/video/stream-tokens", headers=auth(intruder))).json()["token"]

    for token, status in [
        (expired, 401),
        (payload + "." + signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB"), 401),
        (payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature, 401),
        (forged, 401),
        ("garbage", 401),
        (key, 401),  # an API key is not a token, and never belongs in a URL
        (intruders, 404),
    ]:
        response = await client.get(events_path(op_id, token))
        assert response.status_code == status, (token, response.text)
        assert "error" in response.json()
    assert (await client.get(f"/v1/video/events?token={expired}")).status_code == 401


@pytest.mark.settings(cors_allowed_origins=["https://app.example"])
async def test_cors_lets_the_configured_origin_use_event_source(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "cors")
    op = await submit(client, key)
    path = events_path(op["id"], token_of(op["events_url"]))
    async with client.stream("GET", path, headers={"Origin": "https://app.example"}) as response:
        assert response.headers["access-control-allow-origin"] == "https://app.example"
    async with client.stream("GET", path, headers={"Origin": "https://evil.example"}) as response:
        assert "access-control-allow-origin" not in response.headers

    preflight = await client.options(
        "/v1/video/generations",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-app-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-app-id" in allowed
