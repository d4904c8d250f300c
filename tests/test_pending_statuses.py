"""Polls of pending operations answered from memory, and forgotten as soon as the operation changes."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import update

from lunos_events.db.models import CANCELLED, FAILED, Operation
from lunos_events.embedded_redis import EmbeddedRedis
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.services import accounts, generations
from lunos_events.services.generation_request import parse_generation_request
from lunos_events.services.lifecycle import finish_operation
from lunos_events.services.pending_statuses import PendingStatuses
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from tests.conftest import auth, create_user, make_settings
from tests.helpers import generation_body

pytestmark = pytest.mark.anyio

# Long enough that only an event can explain an operation being forgotten within a test.
KEPT = {"simulator_latency_seconds": 600, "status_cache_seconds": 600}


async def status_of(client: httpx.AsyncClient, key: str, op_id: str) -> str:
    response = await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def change_without_an_event(rt: Runtime, op_id: str) -> None:
    async with rt.engine.begin() as conn:
        await conn.execute(update(Operation).where(Operation.id == op_id).values(status=FAILED, error="x"))


@pytest.mark.settings(**KEPT)
async def test_a_pending_poll_is_answered_from_memory_until_an_event_of_the_operation_arrives(
    service: Runtime, client: httpx.AsyncClient, settings: Settings
) -> None:
    key = await create_user(service, "poller")
    first, second = [
        (await client.post("/v1/video/generations", headers=auth(key), json=generation_body())).json()["id"]
        for _ in range(2)
    ]
    assert await status_of(client, key, first) == "pending"
    assert await status_of(client, key, second) == "pending"

    # Changed behind the service's back, with no event: the poll still answers from memory.
    await change_without_an_event(service, second)
    assert await status_of(client, key, second) == "pending"

    # Another process cancels the first one: its event reaches this process's hub, which forgets it.
    async with open_runtime(settings) as other:
        assert await finish_operation(other, first, CANCELLED, refund=True) is not None
    deadline = time.monotonic() + 10
    while (status := await status_of(client, key, first)) == "pending" and time.monotonic() < deadline:
        await anyio.sleep(0.02)
    assert status == CANCELLED


@pytest.mark.settings(**KEPT)
async def test_a_change_made_by_this_process_is_forgotten_before_its_event_goes_out(
    settings: Settings,
) -> None:
    # A runtime with no event hub: only the change itself can make it forget the operation.
    async with open_runtime(settings) as rt:
        await accounts.create_account(rt.engine, "local", 10_000, "dev")
        request = parse_generation_request(
            generation_body(), rt.catalog, max_prompt_chars=settings.max_prompt_chars, header_app_id=None
        )
        op, _ = await generations.create(rt, accounts.Principal("local", "dev"), request)
        pending = rt.pending_statuses
        pending.listening(True)
        pending.remember(op.id, pending.version)
        assert pending.known_pending(op.id)
        assert await finish_operation(rt, op.id, CANCELLED, refund=True) is not None
        assert not pending.known_pending(op.id)


def test_only_a_listening_process_keeps_anything() -> None:
    pending = PendingStatuses(ttl_seconds=60)
    pending.remember("op-1", pending.version)
    assert not pending.known_pending("op-1")

    pending.listening(True)
    pending.remember("op-1", pending.version)
    assert pending.known_pending("op-1")

    pending.listening(False)  # the hub lost its subscription: events may be missed from now on
    assert not pending.known_pending("op-1") and len(pending) == 0


def test_a_read_that_raced_a_change_is_not_kept() -> None:
    pending = PendingStatuses(ttl_seconds=60)
    pending.listening(True)
    read_at = pending.version
    pending.forget("op-2")  # an event arrived while the row was being read
    pending.remember("op-1", read_at)
    assert not pending.known_pending("op-1")


def test_an_entry_is_kept_for_its_time_at_most() -> None:
    pending = PendingStatuses(ttl_seconds=0.05)
    pending.listening(True)
    pending.remember("op-1", pending.version)
    assert pending.known_pending("op-1")
    time.sleep(0.06)
    assert not pending.known_pending("op-1") and len(pending) == 0

    disabled = PendingStatuses(ttl_seconds=0)
    disabled.listening(True)
    disabled.remember("op-1", disabled.version)
    assert not disabled.known_pending("op-1")


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
            op_id = (
                await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
            ).json()["id"]
            assert await status_of(client, key, op_id) == "pending"
            assert rt.pending_statuses.known_pending(op_id)

            redis_server.stop()  # the hub loses its subscription: events could be missed from now on
            await wait_until(lambda: len(rt.pending_statuses) == 0)
            await change_without_an_event(rt, op_id)
            assert await status_of(client, key, op_id) == FAILED

            redis_server.start()
            second = await create_user(rt, "after")
            op_2 = (
                await client.post("/v1/video/generations", headers=auth(second), json=generation_body())
            ).json()["id"]
            # Once the hub has subscribed again, pending polls are kept again.
            await wait_until(
                lambda: rt.pending_statuses.known_pending(op_2), poll=lambda: status_of(client, second, op_2)
            )
    finally:
        redis_server.stop()


async def wait_until(condition, poll=None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if poll is not None:
            await poll()
        await anyio.sleep(0.05)
