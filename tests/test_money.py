"""Money moves atomically: racing submits never overdraw, failures refund exactly once."""

from __future__ import annotations

import re

import anyio
import httpx
import pytest
from sqlalchemy import select

from lunos_events.ids import now_ms
from lunos_events.money import format_amount, parse_amount
from lunos_events.providers.local import SAFETY_BLOCK_MARKER, SAFETY_REASON
from lunos_events.services import accounts
from lunos_events.services.lifecycle import create_operation
from lunos_events.store.models import Event, Operation
from lunos_events.worker.tracking import TIMED_OUT, track
from tests.conftest import auth, create_user
from tests.helpers import generation_body, wait_for_status

pytestmark = pytest.mark.anyio


async def balance_cents(rt, account_id: str) -> int:
    return (await accounts.get_account(rt.store, account_id)).balance_cents


async def test_concurrent_submits_never_overdraw(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "racer", "10.00")  # affords 3 videos at 3.20
    results: list[httpx.Response] = []

    async def one() -> None:
        results.append(await client.post("/v1/video/generations", headers=auth(key), json=generation_body()))

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(one)

    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 3 + [402] * 9
    ids = [r.json()["id"] for r in results if r.status_code == 200]
    assert len(set(ids)) == 3  # unique even when submitted in the same millisecond
    assert all(re.fullmatch(r"video-op:racer:\d{13}", i) for i in ids)
    assert await balance_cents(service, "racer") == 40


async def test_safety_block_fails_and_refunds_once(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "blocked", "5.00")
    body = generation_body(f"something {SAFETY_BLOCK_MARKER}")
    op_id = (await client.post("/v1/video/generations", headers=auth(key), json=body)).json()["id"]
    assert await balance_cents(service, "blocked") == 180
    final = await wait_for_status(client, op_id, auth(key))
    assert final.pop("events_url")
    # When it was made, accepted by the provider and ended.
    assert final.pop("created_at") <= final.pop("started_at") <= final.pop("completed_at")
    assert final == {
        "id": op_id,
        "status": "failed",
        "error": "The video was blocked by the provider's safety filters.",
        "error_code": "safety_filtered",
        "safety": {"reasons": [SAFETY_REASON], "filtered_count": 1},
    }
    assert await balance_cents(service, "blocked") == 500

    # Replaying the job and the transition changes nothing: the refund happened exactly once.
    assert await track(service, op_id) is None
    assert await service.generations.lifecycle.finish(op_id, "failed", error="again", refund=True) is None
    assert await balance_cents(service, "blocked") == 500
    async with service.store.reading() as conn:
        types = (await conn.execute(select(Event.type).where(Event.operation_id == op_id))).scalars().all()
    assert types == ["video.pending", "video.processing", "video.failed"]


@pytest.mark.settings(simulator_latency_seconds=60, operation_deadline_seconds=0.5)
async def test_deadline_fails_and_refunds(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "slow", "5.00")
    op_id = (await client.post("/v1/video/generations", headers=auth(key), json=generation_body())).json()[
        "id"
    ]
    final = await wait_for_status(client, op_id, auth(key), timeout=10)
    assert final.pop("events_url")
    # When it was made, accepted by the provider and ended.
    assert final.pop("created_at") <= final.pop("started_at") <= final.pop("completed_at")
    assert final == {"id": op_id, "status": "failed", "error": TIMED_OUT, "error_code": "deadline_exceeded"}
    assert await balance_cents(service, "slow") == 500


@pytest.mark.settings(start_grace_seconds=0.2)
async def test_operation_whose_start_was_never_recorded_is_refunded(service) -> None:
    """The API process died between charging and starting at the provider."""
    from lunos_events.services.accounts import Principal
    from lunos_events.services.generation_request import GenerationRequest
    from lunos_events.services.generations import new_operation

    await create_user(service, "crashed", "5.00")
    spec = service.catalog.get("google/veo-3.0-generate-preview")
    request = GenerationRequest(spec, "a cat", "16:9", 8, None, "mp4", None)
    deadline = service.settings.operation_deadline_seconds
    op = new_operation(Principal("crashed", "free"), request, now_ms(), deadline)
    async with service.store.transaction() as tx:
        await create_operation(tx, op)
    assert await balance_cents(service, "crashed") == 180
    assert await track(service, op.id) == service.settings.poll_interval_seconds
    await anyio.sleep(0.3)
    assert await track(service, op.id) is None
    async with service.store.reading() as conn:
        row = (await conn.execute(select(Operation).where(Operation.id == op.id))).one()
    assert (row.status, row.error, row.refunded) == ("failed", "Failed to start video generation", True)
    assert await balance_cents(service, "crashed") == 500


async def test_balance_changes_are_guarded(service) -> None:
    await create_user(service, "wallet", "1.00")
    assert await accounts.add_balance(service.store, "wallet", 250) == 350
    with pytest.raises(Exception, match="negative"):
        await accounts.add_balance(service.store, "wallet", -351)
    assert await balance_cents(service, "wallet") == 350


def test_amounts_are_exact() -> None:
    assert parse_amount("25") == 2500
    assert parse_amount("3.2") == 320
    assert parse_amount(" 0.01 ") == 1
    for bad in ("1.001", "abc", "NaN", "Infinity", ""):
        with pytest.raises(ValueError):
            parse_amount(bad)
    assert format_amount(320) == "3.20"
    assert format_amount(-5) == "-0.05"
    assert format_amount(0) == "0.00"
