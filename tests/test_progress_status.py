"""Honest progress: `pending` while queued (with its place), `processing` once the provider accepted
it (with progress and ETA), the `video.processing` event, and `video.progress` reports on streams
and, when asked for, on webhooks."""

from __future__ import annotations

import json
from datetime import datetime

import anyio
import httpx
import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from lunos_events.runtime import Runtime
from lunos_events.services.timing import QueueSpot, timing
from lunos_events.settings import Settings
from lunos_events.store.models import COMPLETED, FAILED, PENDING, PROCESSING
from tests.conftest import auth, create_user
from tests.fake_google import FakeGoogle
from tests.helpers import generation_body, wait_for_status
from tests.sse import SseReader
from tests.test_provider_capacity import pooled_service
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.anyio

# Long enough for a few progress reports, short enough for a test.
RUNNING = {"simulator_latency_seconds": 3.0, "poll_interval_seconds": 0.3, "progress_event_seconds": 0.5}


def seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


async def submit(client: httpx.AsyncClient, key: str, **fields: object) -> dict[str, object]:
    response = await client.post("/v1/video/generations", headers=auth(key), json=generation_body(**fields))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    # The reference document's submit answer: still `pending`, with the provider's name once started.
    assert body["status"] == PENDING
    return body


async def poll(client: httpx.AsyncClient, key: str, op_id: str) -> dict[str, object]:
    response = await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_timing_never_claims_done_before_it_is() -> None:
    created, started = 1_700_000_000_000, 1_700_000_010_000
    early = timing(PROCESSING, created, started, None, run_seconds=60, at_ms=started + 100)
    assert early["progress"] == 1 and early["eta_seconds"] == 60
    half = timing(PROCESSING, created, started, None, run_seconds=60, at_ms=started + 30_000)
    assert half["progress"] == 50 and half["eta_seconds"] == 30
    late = timing(PROCESSING, created, started, None, run_seconds=60, at_ms=started + 600_000)
    assert late["progress"] == 99 and late["eta_seconds"] == 1
    assert (
        half["created_at"] == "2023-11-14T22:13:20.000Z" and half["started_at"] == "2023-11-14T22:13:30.000Z"
    )
    # Queued third with two running at 60 s each: a start about every 30 s, so 90 s, then its run.
    queued = timing(PENDING, created, None, None, run_seconds=60, at_ms=created, queued=QueueSpot(3, 2))
    assert queued == {
        "created_at": "2023-11-14T22:13:20.000Z",
        "progress": 0,
        "queue_position": 3,
        "eta_seconds": 150,
    }
    # A start claimed but not accepted yet is no start.
    assert "started_at" not in timing(PENDING, created, started, None, run_seconds=60, at_ms=started)
    done = timing(COMPLETED, created, started, started + 45_000, run_seconds=0, at_ms=started + 45_000)
    assert done["progress"] == 100 and done["completed_at"] == "2023-11-14T22:14:15.000Z"
    assert "progress" not in timing(FAILED, created, started, started + 1000, run_seconds=0, at_ms=0)


@pytest.mark.settings(**RUNNING)
async def test_a_generation_is_processing_with_progress_until_it_completes(
    service: Runtime, client: httpx.AsyncClient
) -> None:
    key = await create_user(service, "watcher")
    async with client.stream("GET", "/v1/video/events", headers=auth(key)) as stream:
        reader = SseReader(stream)
        op = await submit(client, key)
        op_id = str(op["id"])

        from_memory: list[int] = []
        progresses: list[int] = []
        while True:
            kept = service.running_statuses.known_running(op_id) is not None
            status = await poll(client, key, op_id)
            if status["status"] == COMPLETED:
                break
            if status["status"] == PROCESSING:
                assert isinstance(status["progress"], int) and 1 <= status["progress"] <= 99
                assert isinstance(status["eta_seconds"], int) and status["eta_seconds"] >= 1
                assert seconds_between(str(status["created_at"]), str(status["started_at"])) >= 0
                progresses.append(status["progress"])
                if kept:
                    from_memory.append(status["progress"])
            await anyio.sleep(0.2)
        assert progresses, "never seen processing"
        assert progresses == sorted(progresses) and progresses[-1] > progresses[0], progresses
        # Answered from memory too (the running statuses), where progress still moves with time.
        assert len(from_memory) >= 2 and from_memory[-1] > from_memory[0], from_memory

        events = []
        while not events or events[-1].event != "video.completed":
            event = await reader.next()
            assert event is not None
            events.append(event)

    types = [e.event for e in events]
    assert types[:2] == ["video.pending", "video.processing"], types
    reports = [e for e in events if e.event == "video.progress"]
    assert reports, types
    # Progress reports are not stored: no id, so a resumed stream keeps its place by status events.
    assert all(e.id is None for e in reports)
    assert all(e.id is not None for e in events if e.event != "video.progress")
    figures = [e.json()["progress"] for e in reports]
    assert figures == sorted(figures) and all(1 <= f <= 99 for f in figures)
    assert all(e.json()["status"] == PROCESSING for e in reports)

    processing = events[1].json()
    assert processing["status"] == PROCESSING and processing["id"] == op_id
    completed = events[-1].json()
    assert completed["progress"] == 100
    assert completed["started_at"] == processing["started_at"]
    # The final poll tells the same times as the final event.
    final = await poll(client, key, op_id)
    for field in ("created_at", "started_at", "completed_at"):
        assert final[field] == completed[field]
    assert 2.5 <= seconds_between(str(final["started_at"]), str(final["completed_at"])) < 30


@pytest.mark.settings(simulator_latency_seconds=8.0, progress_event_seconds=60.0)
async def test_an_operation_stream_opens_on_its_progress_as_of_now(
    service: Runtime, client: httpx.AsyncClient
) -> None:
    """The first frame of an operation stream is the current state: the latest stored event (its id,
    so a resume keeps its place) with progress and ETA as of now, not as of when it was stored."""
    key = await create_user(service, "late-viewer")
    op_id = str((await submit(client, key))["id"])
    with anyio.fail_after(10):
        while (status := await poll(client, key, op_id))["status"] != PROCESSING or int(
            str(status["progress"])
        ) < 20:
            await anyio.sleep(0.2)
    async with service.store.reading() as conn:
        stored = (
            await conn.execute(
                text("SELECT seq, data FROM events WHERE operation_id = :op AND type = 'video.processing'"),
                {"op": op_id},
            )
        ).one()
    assert json.loads(stored.data)["progress"] == 1  # stored at the start

    path = f"/v1/video/generations/{op_id}/events"
    async with client.stream("GET", path, headers=auth(key)) as stream:
        first = await SseReader(stream).next()
    assert first is not None and first.event == "video.processing" and first.id == str(stored.seq)
    shown = first.json()
    assert shown["status"] == PROCESSING and shown["id"] == op_id
    assert int(shown["progress"]) >= int(str(status["progress"])) >= 20
    assert int(shown["eta_seconds"]) < 8
    assert shown["started_at"] == status["started_at"]


@pytest.mark.settings(**RUNNING)
async def test_a_processing_generation_can_be_cancelled_and_is_refunded(
    service: Runtime, client: httpx.AsyncClient
) -> None:
    key = await create_user(service, "cancels", "10.00")
    op = await submit(client, key)
    with anyio.fail_after(10):
        while (await poll(client, key, str(op["id"])))["status"] != PROCESSING:
            await anyio.sleep(0.05)
    cancelled = await client.post(f"/v1/video/generations/{op['id']}/cancel", headers=auth(key))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    balance = (await client.get("/v1/account", headers=auth(key))).json()
    assert balance["balance"] == "10.00", balance
    # Still tracked up to its end at the provider: it stays cancelled, and nothing is charged again.
    await anyio.sleep(4)
    assert (await poll(client, key, str(op["id"])))["status"] == "cancelled"


@pytest.mark.settings(**RUNNING, webhook_allow_private=True)
async def test_progress_webhooks_go_only_to_whoever_asked_for_them(
    service: Runtime, client: httpx.AsyncClient
) -> None:
    key = await create_user(service, "hooks")
    secrets = []
    async with running_receiver() as asked, running_receiver() as default:
        for url, events in (
            (asked.url, ["video.processing", "video.progress", "video.completed"]),
            (default.url, None),
        ):
            body: dict[str, object] = {"url": url}
            if events is not None:
                body["events"] = events
            created = await client.post("/v1/webhooks", headers=auth(key), json=body)
            assert created.status_code == 201, created.text
            secrets.append(created.json()["secret"])
        op = await submit(client, key)
        await wait_for_status(client, str(op["id"]), auth(key))
        await asked.wait_for(3)
        await default.wait_for(1)
        await anyio.sleep(1.0)  # any stray delivery has arrived by now

    asked_types = [json.loads(m.body)["type"] for m in asked.received]
    assert asked_types[0] == "video.processing" and asked_types[-1] == "video.completed", asked_types
    assert "video.progress" in asked_types
    for message in asked.received:
        payload = Webhook(secrets[0]).verify(message.body, message.headers)
        if payload["type"] == "video.progress":
            assert 1 <= payload["data"]["progress"] <= 99
    # The default filter is the final statuses only.
    assert [json.loads(m.body)["type"] for m in default.received] == ["video.completed"]
    # Stored (and numbered) because a webhook asked: a resumed stream replays them.
    async with client.stream(
        "GET", "/v1/video/events", headers={**auth(key), "Last-Event-ID": "0"}
    ) as stream:
        replayed = SseReader(stream)
        types = [e.event for e in await replayed.take(len(asked_types) + 1)]
    assert types.count("video.progress") == asked_types.count("video.progress")


async def test_a_queued_generation_shows_its_place_in_the_fair_order(settings: Settings) -> None:
    async with pooled_service(settings, FakeGoogle(latency_seconds=8.0), 1, "key-a") as (rt, client, _):
        busy = await create_user(rt, "busy", "100.00")
        quiet = await create_user(rt, "quiet", "100.00")
        first = await submit(client, busy, prompt="busy 0")
        assert first.get("operation_name"), first  # the one slot was free
        waiting = [str((await submit(client, busy, prompt=f"busy {i}"))["id"]) for i in (1, 2, 3)]
        mine = str((await submit(client, quiet, prompt="quiet"))["id"])

        status = await poll(client, quiet, mine)
        assert status["status"] == PENDING and "operation_name" not in status
        # Round-robin: the quiet account's one comes right after the busy account's next.
        assert status["queue_position"] == 2, status
        assert isinstance(status["eta_seconds"], int) and status["eta_seconds"] > 0
        places = [(await poll(client, busy, op_id))["queue_position"] for op_id in waiting]
        assert places == [1, 3, 4]
        running = await poll(client, busy, str(first["id"]))
        assert running["status"] == PROCESSING and "queue_position" not in running

        # Positions move up as the queue drains, and end with the start.
        with anyio.fail_after(30):
            while (status := await poll(client, quiet, mine))["status"] == PENDING:
                assert status["queue_position"] in (1, 2)
                await anyio.sleep(0.2)
        assert status["status"] == PROCESSING and "queue_position" not in status
        assert (await wait_for_status(client, mine, auth(quiet), timeout=60))["status"] == COMPLETED


async def test_a_queued_generation_is_watched_not_polled(settings: Settings) -> None:
    """A queued operation has one deferred job that watches its deadline, not a poll every interval;
    its tracking job is queued once the dispatcher starts it."""
    async with pooled_service(settings, FakeGoogle(latency_seconds=3.0), 1, "key-a") as (rt, client, _):
        key = await create_user(rt, "watched", "100.00")
        running = str((await submit(client, key, prompt="first"))["id"])
        queued = str((await submit(client, key, prompt="second"))["id"])

        async def job_ids() -> set[str]:
            jobs = await rt.bus.redis.queued_jobs(queue_name=rt.settings.queue_name)
            return {job.job_id for job in jobs if job.job_id}

        # The submit's first tracking run (one poll interval later) hands the queued one over.
        with anyio.fail_after(10):
            while f"track:{queued}" in (ids := await job_ids()) or f"watch:{queued}" not in ids:
                await anyio.sleep(0.05)
        assert f"track:{running}" in ids and f"watch:{running}" not in ids
        for _ in range(10):  # and it stays so: nothing polls it
            assert f"track:{queued}" not in await job_ids()
            await anyio.sleep(0.1)

        # Started once the slot frees: tracked from then on, to its end.
        final = await wait_for_status(client, queued, auth(key), timeout=60)
        assert final["status"] == COMPLETED
        op = await rt.store.operation(queued)
        assert op is not None and op.provider_operation is not None
