"""SSE streams over real HTTP: per operation and per account, app filters, resume without gap or dup."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sqlalchemy import update

from lunos_events.serving import running_service
from lunos_events.store.models import Account, Event
from tests.conftest import auth, create_user
from tests.helpers import generation_body, status_without_link
from tests.sse import SseReader, record_events

pytestmark = pytest.mark.anyio


@pytest.mark.settings(sse_retry_ms=1234)
async def test_operation_stream_from_pending_to_completed(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "watcher")
    submitted = (await client.post("/v1/video/generations", headers=auth(key), json=generation_body())).json()
    op_id = submitted["id"]
    assert submitted["events_url"].startswith(f"{client.base_url}/v1/video/generations/{op_id}/events?token=")
    assert key not in submitted["events_url"]

    # The events_url works as is, with no API key: that is what a browser's EventSource does.
    async with httpx.AsyncClient(timeout=30) as browser_like:
        async with browser_like.stream("GET", submitted["events_url"]) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-store"
            reader = SseReader(response)
            events = await reader.rest(timeout=30)  # the stream ends by itself after the final status
    assert reader.retry == 1234
    # The current state first (started at submit, so processing), then what follows.
    assert [e.event for e in events] == ["video.processing", "video.completed"]
    assert [e.seq for e in events] == [2, 3]
    processing = events[0].json()
    assert processing["status"] == "processing" and processing["started_at"] >= processing["created_at"]
    final = (await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))).json()
    assert events[1].json() == status_without_link(final)
    assert final["status"] == "completed"

    # Reconnecting after the final status (as EventSource does) gets 204: "stop reconnecting".
    again = await client.get(submitted["events_url"], headers={"Last-Event-ID": "3"})
    assert again.status_code == 204
    # A late subscriber gets the current state first, then the stream ends.
    async with client.stream("GET", f"/v1/video/generations/{op_id}/events", headers=auth(key)) as response:
        late = await SseReader(response).rest()
    assert [(e.seq, e.event) for e in late] == [(3, "video.completed")]


async def test_failed_operation_ends_its_stream(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "unlucky")
    body = generation_body("a storm #simulate-safety-block")
    submitted = (await client.post("/v1/video/generations", headers=auth(key), json=body)).json()
    async with client.stream("GET", submitted["events_url"]) as response:
        events = await SseReader(response).rest(timeout=30)
    assert [e.event for e in events] == ["video.processing", "video.failed"]
    assert events[1].json()["error"] == "The video was blocked by the provider's safety filters."


async def test_account_stream_with_app_filters(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "studio")
    path = "/v1/video/events"
    async with (
        client.stream("GET", path, headers=auth(key)) as everything,
        client.stream("GET", path, headers=auth(key, "app-a")) as app_a,
        client.stream("GET", f"{path}?app_id=app-b", headers=auth(key)) as app_b,
    ):
        op_a = (
            await client.post("/v1/video/generations", headers=auth(key, "app-a"), json=generation_body())
        ).json()["id"]
        op_b = (
            await client.post("/v1/video/generations", headers=auth(key, "app-b"), json=generation_body())
        ).json()["id"]

        steps = ("video.pending", "video.processing", "video.completed")
        all_events = await SseReader(everything).take(6, timeout=30)
        assert sorted((e.json()["id"], e.event) for e in all_events) == sorted(
            [(op, step) for op in (op_a, op_b) for step in steps]
        )
        assert [e.seq for e in all_events] == [1, 2, 3, 4, 5, 6]
        a_events = await SseReader(app_a).take(3, timeout=30)
        assert [(e.json()["id"], e.event) for e in a_events] == [(op_a, step) for step in steps]
        b_events = await SseReader(app_b).take(3, timeout=30)
        assert [(e.json()["id"], e.event) for e in b_events] == [(op_b, step) for step in steps]


async def test_resume_replays_exactly_the_missed_events(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "flaky-network")
    async with client.stream("GET", "/v1/video/events", headers=auth(key)) as response:
        reader = SseReader(response)
        await record_events(service, "flaky-network", 3)
        seen = [e.seq for e in await reader.take(3)]
    assert seen == [1, 2, 3]
    # The connection is gone; these happen while the client is away.
    await record_events(service, "flaky-network", 4)

    headers = {**auth(key), "Last-Event-ID": str(seen[-1])}
    async with client.stream("GET", "/v1/video/events", headers=headers) as response:
        reader = SseReader(response)
        assert [e.seq for e in await reader.take(4)] == [4, 5, 6, 7]
        await record_events(service, "flaky-network", 2)  # live again after the replay
        assert [e.seq for e in await reader.take(2)] == [8, 9]

    # A browser's first connect resumes with ?last_event_id= and a stream token instead.
    minted = (await client.post("/v1/video/stream-tokens", headers=auth(key))).json()
    async with client.stream("GET", minted["events_url"] + "&last_event_id=7") as response:
        assert [e.seq for e in await SseReader(response).take(2)] == [8, 9]


async def test_events_arriving_during_the_replay_are_neither_lost_nor_doubled(settings) -> None:
    history, live, padding = 3000, 5, 4000
    async with running_service(settings, worker=False) as rt:
        key = await create_user(rt, "historian")
        # ~12 MB of history: far more than the loopback socket buffers hold while this client is not
        # reading, so the server is stuck in the middle of its replay, and the live events below are
        # both in the subscription's buffer and in the store's later replay batches.
        async with rt.store.transaction() as conn:
            await conn.execute(
                Event.__table__.insert(),
                [
                    {
                        "account_id": "historian",
                        "seq": seq,
                        "operation_id": "video-op:historian:1",
                        "app_id": None,
                        "type": "video.pending",
                        "data": f'{{"id":"video-op:historian:1","status":"pending","n":"{"x" * padding}"}}',
                        "created_at_ms": 0,
                        "published_at_ms": 0,
                    }
                    for seq in range(1, history + 1)
                ],
            )
            await conn.execute(update(Account).where(Account.id == "historian").values(event_seq=history))

        base = settings.resolved_public_base_url()
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            async with client.stream(
                "GET", "/v1/video/events?last_event_id=0", headers=auth(key)
            ) as response:
                reader = SseReader(response)
                first = await reader.next()
                assert first is not None and first.seq == 1
                await record_events(rt, "historian", live)  # published while the replay is under way
                rest = await reader.take(history + live - 1, timeout=60)
                # A sentinel must come next: a duplicate of a live event would arrive before it.
                await record_events(rt, "historian", 1)
                sentinel = await reader.next()
    assert [e.seq for e in [first, *rest, sentinel]] == list(range(1, history + live + 2))


@pytest.mark.settings(sse_heartbeat_seconds=0.2)
async def test_idle_streams_get_heartbeats(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "quiet")
    async with client.stream("GET", "/v1/video/events", headers=auth(key)) as response:
        reader = SseReader(response)
        await anyio.sleep(1.5)
        await record_events(service, "quiet", 1)
        assert (await reader.next()).seq == 1
    assert reader.comments.count("heartbeat") >= 2


async def test_bad_stream_requests(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "careful")
    other = await create_user(service, "someone-else")
    op_id = (await client.post("/v1/video/generations", headers=auth(other), json=generation_body())).json()[
        "id"
    ]

    cases = [
        ("/v1/video/events", {}, 401),
        ("/v1/video/events", auth("lun_not-a-key"), 401),
        ("/v1/video/events", {**auth(key), "Last-Event-ID": "abc"}, 400),
        ("/v1/video/events?last_event_id=-1", auth(key), 400),
        ("/v1/video/events?app_id=%00", auth(key), 400),
        (f"/v1/video/generations/{op_id}/events", auth(key), 404),  # another account's operation
        ("/v1/video/generations/video-op:careful:1/events", auth(key), 404),
        ("/v1/video/generations/nonsense/events", auth(key), 404),
    ]
    for path, headers, status in cases:
        response = await client.get(path, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert "error" in response.json()

    # HEAD answers the headers at once instead of opening a stream that never ends.
    head = await client.head("/v1/video/events", headers=auth(key))
    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/event-stream")


async def test_unpublished_and_republished_events_reach_streams_once_in_order(
    service, client: httpx.AsyncClient
) -> None:
    key = await create_user(service, "outbox")
    async with client.stream("GET", "/v1/video/events", headers=auth(key)) as response:
        reader = SseReader(response)
        # A process that crashed between commit and publish leaves event 1 unpublished; event 2's
        # doorbell shows the gap, which the hub fills from the store, in order.
        stranded = await record_events(service, "outbox", 1, publish=False)
        await record_events(service, "outbox", 1)
        assert [e.seq for e in await reader.take(2)] == [1, 2]
        # The relay publishes event 1 late, and events may be published twice: no duplicates.
        await service.generations.outbox.release(stranded[0])
        await record_events(service, "outbox", 1)
        assert (await reader.next()).seq == 3
