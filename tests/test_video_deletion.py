"""Deleting a generation's video: by its owner (DELETE), and by the worker's retention schedule."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from lunos_events.ids import now_ms
from lunos_events.services.deletion import delete_expired_videos
from lunos_events.storage.local import LocalStorage
from lunos_events.store.models import Event, Operation
from tests.conftest import auth, create_user
from tests.helpers import submit_generation, wait_for_status

pytestmark = pytest.mark.anyio


async def video_path(rt, op_id: str):
    async with rt.store.reading() as conn:
        key = (await conn.execute(select(Operation.video_key).where(Operation.id == op_id))).scalar_one()
    assert isinstance(rt.storage, LocalStorage)
    return rt.storage.path_for(key)


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
    assert deleted.json() == {"id": op_id, "status": "deleted"}
    assert not path.exists()
    assert (await client.get(final["video_url"])).status_code == 404
    status = (await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))).json()
    assert status["status"] == "deleted" and "video_url" not in status

    # Idempotent; money, usage (spend) and events unchanged.
    again = await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert again.status_code == 200 and again.json() == deleted.json()
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == balance
    after = (await client.get("/v1/usage", headers=auth(key))).json()["total"]
    assert after["spend"] == usage["spend"] != "0.00" and after["operations"] == usage["operations"]
    assert after["by_status"]["deleted"] == 1 and after["by_status"]["completed"] == 0
    assert await event_count(service, op_id) == events
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
        from sqlalchemy import update

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
