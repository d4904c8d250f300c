"""Tier limits (429 with Retry-After and X-RateLimit-*) and Idempotency-Key replays, over real HTTP."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from sqlalchemy import func, select

from lunos_events.services import accounts
from lunos_events.store.models import IdempotencyKey
from lunos_events.worker.app import purge_idempotency_keys, reconcile_operations
from tests.conftest import auth, create_user
from tests.helpers import generation_body, wait_for_status

pytestmark = pytest.mark.anyio

SMALL = {"free": {"submits_per_minute": 3, "max_in_flight": 10}}
NARROW = {"free": {"submits_per_minute": 100, "max_in_flight": 2}}


async def submit(client: httpx.AsyncClient, key: str, *, idem: str | None = None, **extra) -> httpx.Response:
    headers = auth(key) | ({"Idempotency-Key": idem} if idem is not None else {})
    return await client.post("/v1/video/generations", headers=headers, json=generation_body(**extra))


async def balance(rt, account_id: str) -> int:
    return (await accounts.get_account(rt.store, account_id)).balance_cents


@pytest.mark.settings(tiers=SMALL, rate_limit_window_seconds=3)
async def test_submits_per_window_get_429_with_headers_then_reset(service, client) -> None:
    key = await create_user(service, "hasty", "100.00", tier="free")
    started = time.time()
    remaining = []
    for _ in range(3):
        response = await submit(client, key)
        assert response.status_code == 200, response.text
        assert response.headers["x-ratelimit-limit"] == "3"
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    reset = int(response.headers["x-ratelimit-reset"])
    assert started + 2 <= reset <= time.time() + 4

    before = await balance(service, "hasty")
    refused = await submit(client, key)
    assert refused.status_code == 429
    assert "3 submits per minute" in refused.json()["error"]
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 3
    assert await balance(service, "hasty") == before  # a refused submit costs nothing

    # Another account is not affected, and the window slides: after Retry-After it lets one in.
    other = await create_user(service, "patient", "100.00", tier="free")
    assert (await submit(client, other)).status_code == 200
    await anyio.sleep(int(refused.headers["retry-after"]) + 0.2)
    assert (await submit(client, key)).status_code == 200


@pytest.mark.settings(tiers=NARROW, simulator_latency_seconds=1.5)
async def test_in_flight_limit_frees_a_slot_when_a_job_ends(service, client) -> None:
    key = await create_user(service, "busy", "100.00", tier="free")
    first, second = (await submit(client, key)).json(), (await submit(client, key)).json()
    refused = await submit(client, key)
    assert refused.status_code == 429 and "in flight" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1

    # Cancelling frees a slot at once; finishing frees the other.
    cancelled = await client.post(f"/v1/video/generations/{first['id']}/cancel", headers=auth(key))
    assert cancelled.status_code == 200
    assert (await submit(client, key)).status_code == 200
    assert (await submit(client, key)).status_code == 429
    assert (await wait_for_status(client, second["id"], auth(key)))["status"] == "completed"
    assert (await submit(client, key)).status_code == 200


@pytest.mark.settings(tiers=NARROW, simulator_latency_seconds=0.2)
async def test_a_lost_slot_release_does_not_block_the_account(service, client) -> None:
    key = await create_user(service, "forgotten", "100.00", tier="free")
    ended = [(await submit(client, key)).json()["id"] for _ in range(2)]
    for op_id in ended:
        assert (await wait_for_status(client, op_id, auth(key)))["status"] == "completed"
    # As if both releases were lost (a crash right after the commit): the slots still look taken.
    in_flight = f"{service.settings.redis_key_prefix}:limits:forgotten:in_flight"
    far = int(time.time() * 1000) + 3_600_000
    await service.bus.redis.zadd(in_flight, {op_id: far for op_id in ended})
    # The refusal is checked against the database, which knows both ended.
    third = await submit(client, key)
    assert third.status_code == 200, third.text
    assert (await submit(client, key)).status_code == 200
    refused = await submit(client, key)  # the two new ones are really in flight
    assert refused.status_code == 429 and "in flight" in refused.json()["error"]
    assert set(ended).isdisjoint(m.decode() for m in await service.bus.redis.zrange(in_flight, 0, -1))


@pytest.mark.settings(tiers=NARROW, simulator_latency_seconds=0.2)
async def test_failed_submits_give_their_slot_back(service, client) -> None:
    key = await create_user(service, "unlucky", "3.20", tier="free")
    assert (await submit(client, key, prompt="x #simulate-start-failure")).status_code == 502
    assert (await submit(client, key, prompt="y #simulate-start-failure")).status_code == 502
    assert (await submit(client, key)).status_code == 200  # both 502s were refunded and freed
    assert (await submit(client, key)).status_code == 402
    assert (await submit(client, key)).status_code == 402  # a 402 did not keep a slot either


async def test_idempotent_replay_returns_the_first_operation(service, client) -> None:
    key = await create_user(service, "careful", "100.00")
    first = await submit(client, key, idem="order-42")
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    again = await submit(client, key, idem="order-42")
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["operation_name"] == first.json()["operation_name"]
    assert await balance(service, "careful") == 10000 - 320

    different = await submit(client, key, idem="order-42", prompt="another prompt")
    assert different.status_code == 409 and "different request" in different.json()["error"]
    # Keys belong to one account: another account's same key is a new request.
    other = await create_user(service, "stranger", "100.00")
    assert (await submit(client, other, idem="order-42")).json()["id"] != first.json()["id"]
    for bad in ["", "x" * 256, "caf\u00e9"]:
        headers = auth(key) | {"Idempotency-Key": bad}
        response = await client.post(
            "/v1/video/generations",
            headers=[(k, v.encode()) for k, v in headers.items()],
            json=generation_body(),
        )
        assert response.status_code == 400, bad


async def test_concurrent_identical_requests_make_one_operation(service, client) -> None:
    key = await create_user(service, "racer", "100.00")
    responses: list[httpx.Response] = []

    async def one() -> None:
        responses.append(await submit(client, key, idem="same-click"))

    async with anyio.create_task_group() as tasks:
        for _ in range(12):
            tasks.start_soon(one)
    assert [r.status_code for r in responses] == [200] * 12
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert await balance(service, "racer") == 10000 - 320
    listed = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]
    assert len(listed) == 1


@pytest.mark.settings(idempotency_ttl_seconds=1)
async def test_idempotency_keys_expire(service, client) -> None:
    key = await create_user(service, "forgetful", "100.00")
    first = (await submit(client, key, idem="k")).json()["id"]
    await anyio.sleep(1.2)
    second = (await submit(client, key, idem="k", prompt="changed after expiry")).json()["id"]
    assert second != first


async def test_a_failed_request_lets_its_key_be_retried(service, client) -> None:
    key = await create_user(service, "retrier", "1.00")
    assert (await submit(client, key, idem="topup-then-retry")).status_code == 402
    await accounts.add_balance(service.store, "retrier", 1000)
    retried = await submit(client, key, idem="topup-then-retry")
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers


@pytest.mark.settings(idempotency_ttl_seconds=1)
async def test_expired_keys_are_purged(service, client) -> None:
    key = await create_user(service, "tidy", "100.00")
    for name in ("a", "b"):
        assert (await submit(client, key, idem=name)).status_code == 200
    await anyio.sleep(1.1)
    assert await purge_idempotency_keys({"rt": service}) == 2
    async with service.store.reading() as conn:
        assert (await conn.execute(select(func.count()).select_from(IdempotencyKey))).scalar_one() == 0


@pytest.mark.settings(
    tiers={"free": {"submits_per_minute": 100, "max_in_flight": 1}}, simulator_latency_seconds=30
)
async def test_reconcile_restores_in_flight_slots_a_fresh_redis_lost(service, client) -> None:
    key = await create_user(service, "amnesia", "100.00", tier="free")
    held = (await submit(client, key)).json()["id"]
    assert (await submit(client, key)).status_code == 429
    # What a Redis restarted without persistence leaves: none of the service's keys, so no in-flight
    # count for the account (nor the mark of the last full reconcile).
    redis, prefix = service.bus.redis, service.settings.redis_key_prefix
    lost = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    assert f"{prefix}:limits:amnesia:in_flight".encode() in lost
    await redis.delete(*lost)
    await reconcile_operations({"rt": service})
    refused = await submit(client, key)
    assert refused.status_code == 429 and "in flight" in refused.json()["error"]
    # The restored slot is the pending operation's own: cancelling it frees it.
    await client.post(f"/v1/video/generations/{held}/cancel", headers=auth(key))
    assert (await submit(client, key)).status_code == 200
