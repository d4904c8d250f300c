"""Cancel, list and usage: the job API beyond the reference document, over real HTTP."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from lunos_events.services import accounts
from tests.conftest import auth, create_user
from tests.helpers import generation_body, status_without_link, wait_for_status
from tests.sse import SseReader
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.anyio


async def submit(client: httpx.AsyncClient, key: str, app_id: str | None = None, **extra) -> dict:
    response = await client.post(
        "/v1/video/generations", headers=auth(key, app_id), json=generation_body(**extra)
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.settings(simulator_latency_seconds=30)
async def test_cancel_refunds_once_and_emits_its_event(service, client) -> None:
    key = await create_user(service, "changed-mind", "10.00")
    async with client.stream("GET", "/v1/video/events", headers=auth(key)) as stream:
        reader = SseReader(stream)
        op = await submit(client, key)
        assert await accounts.get_account(service.store, "changed-mind") is not None
        response = await client.post(f"/v1/video/generations/{op['id']}/cancel", headers=auth(key))
        assert response.status_code == 200
        cancelled = status_without_link(response.json())
        assert cancelled["id"] == op["id"] and cancelled["status"] == "cancelled"
        events = await reader.take(3)
    # Started at submit (a free simulator), then cancelled while it ran.
    assert [e.event for e in events] == ["video.pending", "video.processing", "video.cancelled"]
    assert events[2].json() == cancelled
    assert "completed_at" in cancelled and "progress" not in cancelled

    status = (await client.get(f"/v1/video/generations/{op['id']}", headers=auth(key))).json()
    assert status_without_link(status) == cancelled
    assert (await accounts.get_account(service.store, "changed-mind")).balance_cents == 1000

    again = await client.post(f"/v1/video/generations/{op['id']}/cancel", headers=auth(key))
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]
    assert (await accounts.get_account(service.store, "changed-mind")).balance_cents == 1000


async def test_cancel_of_finished_foreign_and_unknown_operations(service, client) -> None:
    key = await create_user(service, "owner")
    other = await create_user(service, "other")
    op = await submit(client, key)
    assert (await wait_for_status(client, op["id"], auth(key)))["status"] == "completed"
    finished = await client.post(f"/v1/video/generations/{op['id']}/cancel", headers=auth(key))
    assert finished.status_code == 409 and "already completed" in finished.json()["error"]
    for path, who in [
        (f"/v1/video/generations/{op['id']}/cancel", other),
        ("/v1/video/generations/video-op:owner:1/cancel", key),
        ("/v1/video/generations/nonsense/cancel", key),
    ]:
        response = await client.post(path, headers=auth(who))
        assert response.status_code == 404, path
    assert (await client.post(f"/v1/video/generations/{op['id']}/cancel")).status_code == 401


async def test_list_is_newest_first_with_a_cursor_and_filters(service, client) -> None:
    key = await create_user(service, "lister")
    other = await create_user(service, "not-listed")
    await submit(client, other)
    made = [await submit(client, key, app_id="a" if i % 2 else "b") for i in range(5)]
    failed = await submit(client, key, app_id="a", prompt="x #simulate-safety-block")
    for op in [*made, failed]:
        await wait_for_status(client, op["id"], auth(key))

    seen: list[dict] = []
    after = None
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        page = (await client.get("/v1/video/generations", headers=auth(key), params=params)).json()
        assert len(page["data"]) <= 2
        seen.extend(page["data"])
        after = page["next_after"]
        if after is None:
            break
    assert [o["id"] for o in seen] == [o["id"] for o in reversed([*made, failed])]
    assert seen[0]["status"] == "failed" and "error" in seen[0]
    assert seen[1]["status"] == "completed" and seen[1]["video_url"].startswith("http")
    assert {"model", "app_id", "created_at"} <= seen[1].keys()

    only_a = (await client.get("/v1/video/generations?app_id=a", headers=auth(key))).json()["data"]
    assert [o["id"] for o in only_a] == [failed["id"], made[3]["id"], made[1]["id"]]
    only_failed = (await client.get("/v1/video/generations?status=failed", headers=auth(key))).json()
    assert [o["id"] for o in only_failed["data"]] == [failed["id"]] and only_failed["next_after"] is None

    for query in [
        "status=done",
        "limit=0",
        "limit=101",
        "limit=x",
        "after=!!!",
        "after=bm9wZQ",
        "app_id=%00",
    ]:
        response = await client.get(f"/v1/video/generations?{query}", headers=auth(key))
        assert response.status_code == 400, query
        assert "error" in response.json()


async def test_usage_counts_and_spend_per_app(service, client) -> None:
    key = await create_user(service, "analyst", "100.00")
    for app in ["web", "web", "ios"]:
        op = await submit(client, key, app_id=app)
        await wait_for_status(client, op["id"], auth(key))
    blocked = await submit(client, key, app_id="web", prompt="x #simulate-safety-block")
    await wait_for_status(client, blocked["id"], auth(key))
    await submit(client, key)  # no app id; still pending or done, either way counted

    report = (await client.get("/v1/usage", headers=auth(key))).json()
    apps = {a["app_id"]: a for a in report["apps"]}
    assert apps["web"]["operations"] == 3
    assert apps["web"]["by_status"]["completed"] == 2 and apps["web"]["by_status"]["failed"] == 1
    assert apps["web"]["spend"] == "6.40"  # the failed one was refunded
    assert apps["ios"] == {
        "app_id": "ios",
        "operations": 1,
        "by_status": {
            "pending": 0,
            "processing": 0,
            "cancelled": 0,
            "completed": 1,
            "failed": 0,
            "deleted": 0,
        },
        "spend": "3.20",
    }
    assert report["total"]["operations"] == 5 and report["total"]["spend"] == "12.80"
    assert report["currency"] == "USD"

    only_ios = (await client.get("/v1/usage?app_id=ios", headers=auth(key))).json()
    assert [a["app_id"] for a in only_ios["apps"]] == ["ios"]
    future = (await client.get("/v1/usage?since=2999-01-01", headers=auth(key))).json()
    assert future["total"]["operations"] == 0 and future["since"] == "2999-01-01T00:00:00.000Z"
    window = (
        await client.get("/v1/usage?since=2000-01-01&until=2999-01-01T00:00:00Z", headers=auth(key))
    ).json()
    assert window["total"] == report["total"]
    for query in ["since=yesterday", "until=2020-13-01", "since=2030-01-01&until=2020-01-01"]:
        assert (await client.get(f"/v1/usage?{query}", headers=auth(key))).status_code == 400, query


@pytest.mark.settings(simulator_latency_seconds=30, webhook_allow_private=True)
async def test_cancel_sends_its_webhook(service, client) -> None:
    key = await create_user(service, "hooked-cancel")
    secret = (await client.get("/v1/webhooks/default/secret", headers=auth(key))).json()["secret"]
    async with running_receiver() as receiver:
        op = await submit(client, key, webhook=receiver.url)
        response = await client.post(f"/v1/video/generations/{op['id']}/cancel", headers=auth(key))
        assert response.status_code == 200
        [message] = await receiver.wait_for(1)
    payload = Webhook(secret).verify(message.body, message.headers)
    assert payload["type"] == "video.cancelled"
    assert payload["data"] == status_without_link(response.json())
    assert payload["data"]["status"] == "cancelled" and payload["data"]["id"] == op["id"]
