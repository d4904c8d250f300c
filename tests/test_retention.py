"""Retention: finished webhook deliveries (with their attempts) and old events are pruned in
batches, each operation's last event kept; a resume from before the pruned history is told so."""

from __future__ import annotations

import json

import anyio
import pytest
from sqlalchemy import func, select, update

from lunos_events.ids import now_ms
from lunos_events.services import retention
from lunos_events.store.models import Account, Event, Operation
from lunos_events.store.webhook_models import WebhookAttempt, WebhookDelivery
from lunos_events.worker.app import prune_retention
from tests.conftest import auth, create_user
from tests.helpers import submit_generation, wait_for_status
from tests.sse import SseReader

pytestmark = pytest.mark.anyio

DAY_MS = 24 * 3600 * 1000


async def count(rt, query) -> int:
    async with rt.store.reading() as conn:
        return (await conn.execute(query)).scalar_one()


async def age(rt, table, where, **values) -> None:
    async with rt.store.transaction() as conn:
        await conn.execute(update(table).where(where).values(**values))


async def ended_operations(rt, client, key: str, n: int) -> list[str]:
    ids = [await submit_generation(client, key) for _ in range(n)]
    for op_id in ids:
        assert (await wait_for_status(client, op_id, auth(key)))["status"] == "completed"
    return ids


async def wait_until_published(rt, account_id: str) -> None:
    with anyio.fail_after(10):
        unpublished = select(func.count()).where(
            Event.account_id == account_id, Event.published_at_ms.is_(None)
        )
        while await count(rt, unpublished):
            await anyio.sleep(0.05)


@pytest.mark.settings(webhook_allow_private=True, webhook_retry_schedule="")
async def test_finished_deliveries_and_their_attempts_are_pruned_in_batches(service, client) -> None:
    key = await create_user(service, "hooks")
    endpoint = (
        await client.post("/v1/webhooks", headers=auth(key), json={"url": "http://127.0.0.1:9/"})
    ).json()
    ids = [
        (await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))).json()["id"]
        for _ in range(4)
    ]
    with anyio.fail_after(15):
        while await count(service, select(func.count()).where(WebhookDelivery.status == "failed")) < 4:
            await anyio.sleep(0.05)
    old, recent, still_pending = ids[:2], ids[2], ids[3]
    month_ago = now_ms() - 31 * DAY_MS
    await age(
        service, WebhookDelivery, WebhookDelivery.id.in_([*old, still_pending]), created_at_ms=month_ago
    )
    await age(service, WebhookDelivery, WebhookDelivery.id == still_pending, status="pending")

    removed = await retention.prune_webhook_deliveries(service.store, now_ms() - 30 * DAY_MS, batch=1)
    assert removed == 2
    left = await count(service, select(func.count()).select_from(WebhookDelivery))
    assert left == 2  # the recent one and the pending one
    for delivery_id in old:
        assert (
            await client.get(f"/v1/webhooks/deliveries/{delivery_id}", headers=auth(key))
        ).status_code == 404
        assert not await count(service, select(func.count()).where(WebhookAttempt.delivery_id == delivery_id))
    assert await count(service, select(func.count()).where(WebhookAttempt.delivery_id == recent)) == 1


async def test_old_events_are_pruned_but_each_operations_last_and_resume_says_reset(service, client) -> None:
    key = await create_user(service, "history")
    old, recent = await ended_operations(service, client, key, 2)
    await wait_until_published(service, "history")
    events_before = await count(service, select(func.count()).where(Event.account_id == "history"))
    await age(service, Operation, Operation.id == old, completed_at_ms=now_ms() - 31 * DAY_MS)

    removed = await retention.prune_events(service.store, now_ms() - 30 * DAY_MS, batch=1)
    assert removed >= 1
    async with service.store.reading() as conn:
        kept = (
            await conn.execute(select(Event.seq, Event.operation_id, Event.type).order_by(Event.seq))
        ).all()
        pruned_through = (
            await conn.execute(select(Account.events_pruned_seq).where(Account.id == "history"))
        ).scalar_one()
    assert len(kept) == events_before - removed
    assert [(op, kind) for _, op, kind in kept if op == old] == [(old, "video.completed")]
    assert sum(1 for _, op, _ in kept if op == recent) >= 2  # untouched
    assert 0 < pruned_through < kept[-1][0]
    # Nothing more to prune: a second run is a no-op.
    assert await retention.prune_events(service.store, now_ms() - 30 * DAY_MS, batch=1) == 0

    # A resume from before the pruned history: stream.reset first, then what is kept, in order.
    async with client.stream("GET", "/v1/video/events?last_event_id=0", headers=auth(key)) as response:
        reader = SseReader(response)
        reset = await reader.next()
        assert reset.event == "stream.reset" and reset.id is None
        assert reset.json()["last_event_id"] == 0 and reset.json()["pruned_through"] == pruned_through
        replayed = [await reader.next() for _ in kept]
        assert [int(e.id) for e in replayed] == [seq for seq, _, _ in kept]
    # From past the pruned range: no reset.
    headers = {**auth(key), "Last-Event-ID": str(pruned_through)}
    async with client.stream("GET", "/v1/video/events", headers=headers) as response:
        first = await SseReader(response).next()
        assert first.event != "stream.reset" and int(first.id) > pruned_through
    # The old operation's own stream still gives its final state.
    async with client.stream(
        "GET", f"/v1/video/generations/{old}/events?last_event_id=0", headers=auth(key)
    ) as response:
        reader = SseReader(response)
        assert (await reader.next()).event == "stream.reset"
        final = await reader.next()
        assert final.event == "video.completed" and json.loads(final.data)["id"] == old


@pytest.mark.settings(retention_events_days=0, retention_webhook_days=0, video_retention_days=30)
async def test_the_hourly_job_follows_the_settings(service, client) -> None:
    key = await create_user(service, "settled")
    [op_id] = await ended_operations(service, client, key, 1)
    await wait_until_published(service, "settled")
    events = await count(service, select(func.count()).where(Event.account_id == "settled"))
    await age(service, Operation, Operation.id == op_id, completed_at_ms=now_ms() - 31 * DAY_MS)
    assert await prune_retention({"rt": service}) == 1  # the video only: events are kept (0 = for ever)
    # (and one more: its video.deleted)
    assert await count(service, select(func.count()).where(Event.account_id == "settled")) == events + 1
    status = (await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))).json()
    assert status["status"] == "deleted" and "video_url" not in status


async def test_inputs_an_operations_end_left_behind_are_swept_within_the_week(service, client) -> None:
    """An operation's end removes its inputs; when that removal failed (storage away), the hourly
    run removes them once the operation ended over an hour ago, and forgets their key; once a week
    it also looks further back (operations ended before an upgrade)."""
    key = await create_user(service, "leftovers")
    ids = await ended_operations(service, client, key, 4)
    videos = service.settings.videos_dir
    ended_ago = {ids[0]: 2 * 3600 * 1000, ids[1]: 6 * DAY_MS, ids[2]: 10 * 60 * 1000, ids[3]: 8 * DAY_MS}
    for op_id, ago in ended_ago.items():
        inputs = f"leftovers/inputs/{op_id[-6:]}.json"
        (videos / inputs).parent.mkdir(parents=True, exist_ok=True)
        (videos / inputs).write_text('{"image": {"data": "", "mimeType": "image/png"}}')
        await age(
            service,
            Operation,
            Operation.id == op_id,
            completed_at_ms=now_ms() - ago,
            parameters={"aspectRatio": "16:9", "inputs": inputs},
        )

    async def check(swept: set[str]) -> None:
        for op_id in ended_ago:
            op = await service.store.operation(op_id)
            inputs = f"leftovers/inputs/{op_id[-6:]}.json"
            assert (videos / inputs).exists() is (op_id not in swept), op_id
            assert ("inputs" in op.parameters) is (op_id not in swept)
            assert op.parameters["aspectRatio"] == "16:9" and op.status == "completed"

    # Every hour: those that ended between an hour and a week ago.
    pruned = await retention.prune(service.store, service.storage, service.settings)
    assert pruned.inputs == 2
    await check({ids[0], ids[1]})
    # Once a week the worker's run looks at every age (here: the 8-day-old one), then not again.
    assert await prune_retention({"rt": service}) == 1
    await check({ids[0], ids[1], ids[3]})
    assert await prune_retention({"rt": service}) == 0
