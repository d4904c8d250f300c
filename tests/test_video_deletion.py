"""Deleting a generation's video: by its owner (DELETE), and by the worker's retention schedule."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from lunos_events.ids import now_ms
from lunos_events.services.deletion import delete_expired_videos
from lunos_events.storage.local import LocalStorage
from lunos_events.store.models import Event, Operation
from tests.conftest import auth, create_user
from tests.helpers import submit_generation, wait_for_status
from tests.sse import SseReader
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.anyio


async def video_path(rt, op_id: str):
    async with rt.store.reading() as conn:
        key = (await conn.execute(select(Operation.video_key).where(Operation.id == op_id))).scalar_one()
    assert isinstance(rt.storage, LocalStorage)
    return rt.storage.path_for(key)


def without_url(status: dict) -> dict:
    """A status without its events_url (whose stream token is signed anew on every answer)."""
    return {name: value for name, value in status.items() if name != "events_url"}


async def event_count(rt, op_id: str) -> int:
    async with rt.store.reading() as conn:
        return (await conn.execute(select(func.count()).where(Event.operation_id == op_id))).scalar_one()


async def test_delete_removes_the_video_and_keeps_the_record(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "tidy", balance="10.00")
    op_id = await submit_generation(client, key)
    final = await wait_for_status(client, op_id, auth(key))
    assert final["status"] == "completed"
    path = await video_path(service, op_id)
    assert path.is_file()
    assert (await client.get(final["video_url"])).status_code == 200
    balance = (await client.get("/v1/account", headers=auth(key))).json()["balance"]
    usage = (await client.get("/v1/usage", headers=auth(key))).json()["total"]
    events = await event_count(service, op_id)

    deleted = await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert deleted.status_code == 200, deleted.text
    assert not path.exists()
    assert (await client.get(final["video_url"])).status_code == 404
    status = (await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))).json()
    assert status["status"] == "deleted" and "video_url" not in status
    # The answer is the status a poll now shows: its times stay (it was made, ran and ended).
    assert without_url(deleted.json()) == without_url(status)
    assert {"created_at", "started_at", "completed_at"} <= set(status)
    assert status["completed_at"] == final["completed_at"]

    # Idempotent; money and usage (spend) unchanged; one `video.deleted` event, not two.
    again = await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert again.status_code == 200 and without_url(again.json()) == without_url(deleted.json())
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == balance
    after = (await client.get("/v1/usage", headers=auth(key))).json()["total"]
    assert after["spend"] == usage["spend"] != "0.00" and after["operations"] == usage["operations"]
    assert after["by_status"]["deleted"] == 1 and after["by_status"]["completed"] == 0
    assert await event_count(service, op_id) == events + 1
    listed = (await client.get("/v1/video/generations?status=deleted", headers=auth(key))).json()["data"]
    assert [item["id"] for item in listed] == [op_id]


@pytest.mark.settings(simulator_latency_seconds=30)
async def test_a_pending_generation_must_be_cancelled_before_delete(service, client) -> None:
    key = await create_user(service, "hasty")
    op_id = await submit_generation(client, key)
    refused = await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert refused.status_code == 409
    assert "cancel it first" in refused.json()["error"]
    assert (await client.post(f"/v1/video/generations/{op_id}/cancel", headers=auth(key))).status_code == 200
    deleted = await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"


async def test_delete_of_another_accounts_or_an_unknown_operation_is_404(service, client) -> None:
    owner = await create_user(service, "owner")
    other = await create_user(service, "other")
    op_id = await submit_generation(client, owner)
    await wait_for_status(client, op_id, auth(owner))
    for target, key in ((op_id, other), ("video-op:other:1", other), ("nonsense", owner)):
        response = await client.delete(f"/v1/video/generations/{target}", headers=auth(key))
        assert response.status_code == 404 and response.json() == {"error": "Operation not found"}
    assert (await video_path(service, op_id)).is_file()
    assert (await client.delete(f"/v1/video/generations/{op_id}")).status_code == 401


async def test_video_retention_deletes_only_videos_past_it(service, client) -> None:
    key = await create_user(service, "keeper")
    old, recent = await submit_generation(client, key), await submit_generation(client, key)
    for op_id in (old, recent):
        await wait_for_status(client, op_id, auth(key))
    async with service.store.transaction() as conn:
        await conn.execute(update(Operation).where(Operation.id == old).values(completed_at_ms=1000))
    assert await delete_expired_videos(service.store, service.storage, now_ms() - 3_600_000) == 1
    assert not (await video_path(service, old)).exists()
    assert (await video_path(service, recent)).is_file()
    statuses = {
        op_id: (await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))).json()["status"]
        for op_id in (old, recent)
    }
    assert statuses == {old: "deleted", recent: "completed"}
    assert await delete_expired_videos(service.store, service.storage, now_ms() - 3_600_000) == 0


@pytest.mark.settings(webhook_allow_private=True)
async def test_a_deletion_is_an_event_on_streams_and_to_webhooks_that_ask(service, client) -> None:
    """`video.deleted`: on the account stream, as an operation stream's final frame, and as a
    signed webhook to an endpoint that asked for it (not to one on the default filter)."""
    key = await create_user(service, "announcer")
    async with running_receiver() as asked, running_receiver() as default:
        secrets = []
        for url, events in ((asked.url, ["video.completed", "video.deleted"]), (default.url, None)):
            body: dict[str, object] = {"url": url, **({"events": events} if events else {})}
            created = await client.post("/v1/webhooks", headers=auth(key), json=body)
            assert created.status_code == 201, created.text
            secrets.append(created.json()["secret"])
        async with client.stream("GET", "/v1/video/events", headers=auth(key)) as stream:
            reader = SseReader(stream)
            op_id = await submit_generation(client, key)
            final = await wait_for_status(client, op_id, auth(key))
            deleted = (await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))).json()
            events = []
            while not events or events[-1].event != "video.deleted":
                event = await reader.next()
                assert event is not None
                events.append(event)
        assert [e.event for e in events if e.event != "video.progress"][-2:] == [
            "video.completed",
            "video.deleted",
        ]
        announced = events[-1].json()
        assert announced == without_url(deleted) and announced["completed_at"] == final["completed_at"]

        await asked.wait_for(2)
        await default.wait_for(1)
        await anyio.sleep(0.5)  # a stray delivery would have arrived by now
    payloads = [Webhook(secrets[0]).verify(m.body, m.headers) for m in asked.received]
    assert [p["type"] for p in payloads] == ["video.completed", "video.deleted"]
    assert payloads[1]["data"] == announced
    assert [json.loads(m.body)["type"] for m in default.received] == ["video.completed"]

    # The operation's stream opens on its final state and ends: it is deleted.
    async with client.stream("GET", f"/v1/video/generations/{op_id}/events", headers=auth(key)) as stream:
        reader = SseReader(stream)
        first = await reader.next()
        assert first is not None and first.event == "video.deleted" and first.id == events[-1].id
        assert await reader.next() is None
    # Resumed from the completion, it gets the deletion; resumed from the deletion, nothing.
    resume = {**auth(key), "Last-Event-ID": events[-2].id or ""}
    async with client.stream("GET", f"/v1/video/generations/{op_id}/events", headers=resume) as stream:
        assert [e.event for e in await SseReader(stream).take(1)] == ["video.deleted"]
    done = {**auth(key), "Last-Event-ID": events[-1].id or ""}
    gone = await client.get(f"/v1/video/generations/{op_id}/events", headers=done)
    assert gone.status_code == 204


async def test_retention_deletions_are_events_too(service, client) -> None:
    key = await create_user(service, "expiring")
    op_id = await submit_generation(client, key)
    await wait_for_status(client, op_id, auth(key))
    async with service.store.transaction() as conn:
        await conn.execute(update(Operation).where(Operation.id == op_id).values(completed_at_ms=1000))
    assert await delete_expired_videos(service.store, service.storage, now_ms() - 3_600_000) == 1
    async with service.store.reading() as conn:
        types = (
            await conn.execute(select(Event.type).where(Event.operation_id == op_id).order_by(Event.seq))
        ).scalars()
        assert list(types)[-2:] == ["video.completed", "video.deleted"]
    assert await delete_expired_videos(service.store, service.storage, now_ms() - 3_600_000) == 0
