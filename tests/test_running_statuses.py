"""Polls of processing operations answered from memory, and forgotten as soon as the operation changes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import update

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.bus.messages import encode_event, type_prefix
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.services import accounts
from lunos_events.services.events import StoredEvent
from lunos_events.services.generation_request import parse_generation_request
from lunos_events.services.running_statuses import CREATION_EVENT, UNCHANGING_EVENTS, Running, RunningStatuses
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.store.models import CANCELLED, COMPLETED, FAILED, PROCESSING, Operation
from lunos_events.streams.hub import EventHub
from tests.client_support import eventually
from tests.conftest import auth, create_user, make_settings
from tests.helpers import generation_body, submit_generation, wait_for_status
from tests.tcp_proxy import cuttable_proxy

pytestmark = pytest.mark.anyio

# Long enough that only an event can explain an operation being forgotten within a test.
KEPT = {"simulator_latency_seconds": 600, "status_cache_seconds": 600}
RUNNING = Running(created_at_ms=1, started_at_ms=2, provider_model="veo-3.1-generate-001")


async def status_of(client: httpx.AsyncClient, key: str, op_id: str) -> str:
    response = await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def change_without_an_event(rt: Runtime, op_id: str) -> None:
    async with rt.store.transaction() as conn:
        await conn.execute(update(Operation).where(Operation.id == op_id).values(status=FAILED, error="x"))


async def kept_after_a_poll(rt: Runtime, client: httpx.AsyncClient, key: str, op_id: str) -> None:
    """Poll until this process keeps the operation (a read that raced an event is not kept)."""
    with anyio.fail_after(20):
        while not rt.running_statuses.known_running(op_id) is not None:
            await status_of(client, key, op_id)
            await anyio.sleep(0.02)


@pytest.mark.settings(**KEPT)
async def test_a_processing_poll_is_answered_from_memory_until_an_event_of_the_operation_arrives(
    service: Runtime, client: httpx.AsyncClient, settings: Settings
) -> None:
    key = await create_user(service, "poller")
    first, second = await submit_generation(client, key), await submit_generation(client, key)
    await kept_after_a_poll(service, client, key, first)
    await kept_after_a_poll(service, client, key, second)

    # Changed behind the service's back, with no event: the poll still answers from memory.
    await change_without_an_event(service, second)
    assert await status_of(client, key, second) == PROCESSING

    # Another process cancels the first one: its event reaches this process's hub, which forgets it.
    async with open_runtime(settings) as other:
        assert await other.generations.lifecycle.finish(first, CANCELLED, refund=True) is not None
    assert (await wait_for_status(client, first, auth(key), timeout=10))["status"] == CANCELLED


@pytest.mark.settings(**KEPT)
async def test_a_change_made_by_this_process_forgets_the_operation_itself(settings: Settings) -> None:
    # A runtime with no event hub: only the change itself can make it forget the operation.
    async with open_runtime(settings) as rt:
        await accounts.create_account(rt.store, "local", 10_000, "dev")
        request = parse_generation_request(
            generation_body(), rt.catalog, max_prompt_chars=settings.max_prompt_chars, header_app_id=None
        )
        op, _ = await rt.generations.create(accounts.Principal("local", "dev"), request)
        pending = rt.running_statuses
        pending.listening(True)
        pending.remember(op.id, pending.version, RUNNING)
        assert pending.known_running(op.id) is not None
        assert await rt.generations.lifecycle.finish(op.id, CANCELLED, refund=True) is not None
        assert pending.known_running(op.id) is None


@pytest.mark.settings(**KEPT)
async def test_an_event_arriving_while_nothing_is_kept_still_stops_a_read_in_flight_from_being_kept(
    service: Runtime, client: httpx.AsyncClient
) -> None:
    key = await create_user(service, "racer")
    op_id = await submit_generation(client, key)
    pending = service.running_statuses
    read_started = pending.version  # a read of the operation begins (on PostgreSQL it awaits)
    assert len(pending) == 0
    redis = Redis.from_url(service.settings.redis_url)
    try:
        message = {"account_id": "racer", "seq": 99, "operation_id": op_id, "app_id": None}
        message |= {"type": "video.completed", "created_at_ms": 1, "data": {"id": op_id, "status": COMPLETED}}
        await redis.publish(service.settings.events_channel, json.dumps(message))
    finally:
        await redis.aclose()

    def refused() -> bool:
        pending.remember(op_id, read_started, RUNNING)  # the read ends: its row may predate the event
        return pending.known_running(op_id) is None

    await eventually(refused, timeout=10)


async def test_while_redis_is_away_polls_read_the_database(tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis")
    redis_server.start()
    try:
        settings = make_settings(tmp_path, redis_server.url, **KEPT)
        async with (
            running_service(settings) as rt,
            httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
        ):
            key = await create_user(rt, "outage")
            kept, read_during = await submit_generation(client, key), await submit_generation(client, key)
            await kept_after_a_poll(rt, client, key, kept)

            redis_server.stop()  # the hub loses its subscription: events could be missed from now on
            await eventually(lambda: len(rt.running_statuses) == 0, timeout=20)
            await change_without_an_event(rt, kept)
            assert await status_of(client, key, kept) == FAILED
            assert await status_of(client, key, read_during) == PROCESSING  # read, and not kept
            await change_without_an_event(rt, read_during)
            assert await status_of(client, key, read_during) == FAILED

            redis_server.start()
            second = await create_user(rt, "after")
            op_id = await submit_generation(client, second)
            # Once the hub has subscribed again, processing polls are kept again.
            await kept_after_a_poll(rt, client, second, op_id)
    finally:
        redis_server.stop()


async def test_a_subscription_gone_silent_counts_as_lost(service: Runtime) -> None:
    redis = httpx.URL(service.settings.redis_url or "")
    async with cuttable_proxy(f"http://{redis.host}:{redis.port}") as proxy:
        proxied = httpx.URL(proxy.url)
        pending = RunningStatuses(ttl_seconds=600)
        hub = EventHub(queue_size=8, heartbeat_seconds=15, liveness_seconds=1.0)
        channel = service.settings.events_channel
        proxied_redis = Redis.from_url(f"redis://{proxied.host}:{proxied.port}")
        async with hub.running(proxied_redis, channel, service.store, pending):
            assert hub.connected.is_set()
            await anyio.sleep(3)  # quiet, but its pings are answered
            assert hub.connected.is_set() and hub.reconnects == 0
            pending.remember("op", pending.version, RUNNING)
            assert pending.known_running("op") is not None

            proxy.silence()  # connections stay open, nothing gets through: a half-open connection
            await eventually(lambda: not hub.connected.is_set(), timeout=15)
            assert len(pending) == 0
            pending.remember("op", pending.version, RUNNING)
            assert pending.known_running("op") is None
        await proxied_redis.aclose()


def test_only_a_listening_process_keeps_anything() -> None:
    pending = RunningStatuses(ttl_seconds=60)
    pending.remember("op-1", pending.version, RUNNING)
    assert pending.known_running("op-1") is None

    pending.listening(True)
    pending.remember("op-1", pending.version, RUNNING)
    assert pending.known_running("op-1") is not None

    pending.listening(False)  # the hub lost its subscription: events may be missed from now on
    assert pending.known_running("op-1") is None and len(pending) == 0


def test_a_read_that_raced_a_change_of_its_operation_is_not_kept() -> None:
    pending = RunningStatuses(ttl_seconds=60)
    pending.listening(True)
    read_at = pending.version
    pending.forget("op-2")  # another operation changed meanwhile: no reason to refuse op-1
    pending.remember("op-1", read_at, RUNNING)
    assert pending.known_running("op-1") is not None

    read_at = pending.version
    pending.forget("op-3")
    pending.remember("op-3", read_at, RUNNING)  # op-3 itself changed while it was read
    assert pending.known_running("op-3") is None


def test_forgets_too_old_to_remember_refuse_the_reads_they_could_have_raced() -> None:
    pending = RunningStatuses(ttl_seconds=60)
    pending.listening(True)
    read_at = pending.version
    for n in range(RunningStatuses.MAX_FORGOTTEN + 1):
        pending.forget(f"other-{n}")
    pending.forget("op-1")
    # op-1's forget is still remembered; forgets of the first others are not, so a read that
    # started before them is refused whatever it read.
    pending.remember("op-1", read_at, RUNNING)
    pending.remember("other-0", read_at, RUNNING)
    pending.remember("fresh", read_at, RUNNING)
    assert not any(pending.known_running(op) is not None for op in ("op-1", "other-0", "fresh"))
    pending.remember("fresh", pending.version, RUNNING)
    assert pending.known_running("fresh") is not None


def test_an_entry_is_kept_for_its_time_at_most() -> None:
    pending = RunningStatuses(ttl_seconds=1)
    pending.listening(True)
    pending.remember("op-1", pending.version, RUNNING)
    assert pending.known_running("op-1") is not None
    time.sleep(1.1)
    assert pending.known_running("op-1") is None and len(pending) == 0

    disabled = RunningStatuses(ttl_seconds=0)
    disabled.listening(True)
    disabled.remember("op-1", disabled.version, RUNNING)
    assert disabled.known_running("op-1") is None


def test_messages_that_change_nothing_kept_are_told_from_their_start() -> None:
    """The hub skips parsing creation and progress messages by their start: no other message may
    start alike."""
    skipped = tuple(type_prefix(type_) for type_ in UNCHANGING_EVENTS)
    assert CREATION_EVENT in UNCHANGING_EVENTS and "video.progress" in UNCHANGING_EVENTS

    def message(type_: str, app_id: str | None) -> bytes:
        data = json.dumps({"type": "video.pending", "note": '{"type":"video.progress",'})
        return encode_event(StoredEvent("acct", 7, "video-op:acct:1", app_id, type_, data, 1)).encode()

    for type_ in UNCHANGING_EVENTS:
        assert message(type_, None).startswith(skipped)
    for type_ in ("video.processing", "video.completed", "video.failed", "video.cancelled"):
        for app_id in (None, "video.pending", '{"type":"video.progress",'):
            raw = message(type_, app_id)
            assert not raw.startswith(skipped) and json.loads(raw)["type"] == type_
