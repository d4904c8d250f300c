"""Per-tier caps a tenant could otherwise use to load the service or amplify outbound traffic:
open event streams (counted across API processes in Redis), webhook endpoints, webhook test sends
and redeliveries per minute, and list/usage/stream-token requests per API key."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from lunos_events.bus.redis_bus import connect_bus
from lunos_events.ids import now_ms
from lunos_events.services.stream_slots import StreamSlots
from lunos_events.settings import TierLimits
from tests.conftest import auth, create_user

pytestmark = pytest.mark.anyio

CAPPED = TierLimits(
    submits_per_minute=100,
    max_in_flight=10,
    max_streams=2,
    max_webhook_endpoints=2,
    webhook_sends_per_minute=3,
    reads_per_minute=4,
)
CAPS = pytest.mark.settings(tiers={"capped": CAPPED, "dev": CAPPED}, webhook_allow_private=True)


async def stream_status(client, url: str, headers=None) -> object:
    """Open a stream and give back its refusal, or the status of a stream that did open."""
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response
        return response.status_code


def assert_429(response, cap_words: str) -> None:
    assert not isinstance(response, int), f"not refused: {response}"
    assert response.status_code == 429, response.text
    assert cap_words in response.json()["error"]
    assert int(response.headers["retry-after"]) >= 1


@CAPS
async def test_open_streams_are_capped_per_account_and_freed_when_closed(service, client) -> None:
    key = await create_user(service, "streamer", tier="capped")
    other = await create_user(service, "neighbour", tier="capped")
    async with AsyncExitStack() as streams:
        first = await streams.enter_async_context(client.stream("GET", "/v1/video/events", headers=auth(key)))
        token = (await client.post("/v1/video/stream-tokens", headers=auth(key))).json()["token"]
        second = await streams.enter_async_context(client.stream("GET", f"/v1/video/events?token={token}"))
        assert first.status_code == second.status_code == 200
        refused = await stream_status(client, "/v1/video/events", auth(key))
        assert_429(refused, "Too many open event streams: at most 2")
        # Another account is not affected.
        async with client.stream("GET", "/v1/video/events", headers=auth(other)) as theirs:
            assert theirs.status_code == 200
    # Both closed: their slots come back (the release runs just after the stream ends).
    await until_a_stream_opens(client, auth(key))


async def until_a_stream_opens(client, headers, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while await stream_status(client, "/v1/video/events", headers) != 200:
            await anyio.sleep(0.05)


async def live_slots(bus, account_id: str) -> int:
    """Slots not yet expired (expired ones are swept out by the next take)."""
    return await bus.redis.zcount(bus.limits.key(account_id, "streams"), now_ms(), "+inf")


@CAPS
async def test_slots_of_another_process_count_and_expire_when_it_stops_refreshing(service, client) -> None:
    key = await create_user(service, "shared", tier="capped")
    bus = await connect_bus(service.settings)
    try:
        # Another API process holds both slots, then crashes: it stops refreshing them.
        crashed = StreamSlots(bus, ttl_seconds=1.5)
        for _ in range(2):
            await crashed.take("shared", CAPPED)
        refused = await stream_status(client, "/v1/video/events", auth(key))
        assert_429(refused, "Too many open event streams")
        await until_a_stream_opens(client, auth(key))

        # A live process keeps its slots past their TTL by refreshing them.
        live = StreamSlots(bus, ttl_seconds=1.0)
        async with live.running(every_seconds=0.2):
            await live.take("shared-live", CAPPED)
            await anyio.sleep(2.0)
            assert await live_slots(bus, "shared-live") == 1
        await anyio.sleep(1.5)
        assert await live_slots(bus, "shared-live") == 0
    finally:
        await bus.aclose()


@CAPS
async def test_webhook_endpoints_are_capped_per_account(service, client) -> None:
    key = await create_user(service, "fan-out", tier="capped")
    made = []
    for n in range(2):
        created = await client.post(
            "/v1/webhooks", headers=auth(key), json={"url": f"http://127.0.0.1:9/{n}"}
        )
        assert created.status_code == 201
        made.append(created.json()["id"])
    refused = await client.post("/v1/webhooks", headers=auth(key), json={"url": "http://127.0.0.1:9/x"})
    assert_429(refused, "Too many webhook endpoints: at most 2")
    assert len((await client.get("/v1/webhooks", headers=auth(key))).json()["data"]) == 2
    assert (await client.delete(f"/v1/webhooks/{made[0]}", headers=auth(key))).status_code == 204
    again = await client.post("/v1/webhooks", headers=auth(key), json={"url": "http://127.0.0.1:9/y"})
    assert again.status_code == 201


@CAPS
async def test_webhook_test_sends_and_redeliveries_are_capped_per_minute(service, client) -> None:
    key = await create_user(service, "noisy", tier="capped")
    endpoint = (
        await client.post("/v1/webhooks", headers=auth(key), json={"url": "http://127.0.0.1:9/"})
    ).json()
    sent = await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))
    assert sent.status_code == 202
    assert (await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))).status_code == 202
    redelivered = await client.post(
        f"/v1/webhooks/deliveries/{sent.json()['id']}/redeliver", headers=auth(key)
    )
    assert redelivered.status_code in (202, 409)  # counted either way
    assert_429(
        await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key)),
        "3 webhook test sends and redeliveries per minute",
    )
    assert_429(
        await client.post(f"/v1/webhooks/deliveries/{sent.json()['id']}/redeliver", headers=auth(key)),
        "webhook test sends and redeliveries",
    )


@CAPS
async def test_list_usage_and_stream_token_requests_are_capped_per_key(service, client) -> None:
    key = await create_user(service, "reader", tier="capped")
    for path, method in (
        ("/v1/video/generations", "GET"),
        ("/v1/usage", "GET"),
        ("/v1/video/stream-tokens", "POST"),
        ("/v1/webhooks", "GET"),
    ):
        assert (await client.request(method, path, headers=auth(key))).status_code == 200, path
    refused = await client.get("/v1/video/generations", headers=auth(key))
    assert_429(refused, "4 list, usage and stream-token requests per minute")
    assert refused.headers["x-ratelimit-limit"] == "4"
    # Per key: the account's other key still reads; status polls are not counted by this cap.
    from lunos_events.services import accounts

    second = await accounts.create_api_key(service.store, "reader")
    assert (await client.get("/v1/usage", headers=auth(second))).status_code == 200
    assert (await client.get("/v1/account", headers=auth(key))).status_code == 200
