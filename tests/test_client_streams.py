"""The client's event streams and waits against a live server: resume after a forced disconnect,
generate_and_wait over SSE, by polling, and falling back to polling when the stream is unreachable."""

from __future__ import annotations

import anyio
import pytest

from lunos_client import AsyncLunosClient, LunosClient, VideoEvent
from tests.client_support import RequestLog, eventually, in_thread
from tests.conftest import create_user
from tests.sse import record_events
from tests.tcp_proxy import cuttable_proxy

pytestmark = pytest.mark.anyio


@pytest.mark.settings(sse_retry_ms=50)
async def test_account_stream_resumes_after_a_forced_disconnect(service) -> None:
    key = await create_user(service, "py-resume")
    received: list[VideoEvent] = []
    async with cuttable_proxy(service.settings.resolved_public_base_url()) as proxy:

        def consume() -> None:
            with LunosClient(key, base_url=proxy.url) as lunos:
                # last_event_id=0: everything after event 0, so nothing recorded below can be missed.
                for event in lunos.video.stream_events(None, last_event_id=0):
                    received.append(event)
                    if len(received) == 7:
                        return

        async with anyio.create_task_group() as tg:
            tg.start_soon(in_thread, consume)
            await record_events(service, "py-resume", 3)
            await eventually(lambda: len(received) == 3)
            proxy.cut()  # the connection dies mid-stream
            await record_events(service, "py-resume", 4)  # while the client is away, or just back
            await eventually(lambda: len(received) == 7)
    assert [e.id for e in received] == [1, 2, 3, 4, 5, 6, 7]  # nothing lost, nothing twice
    assert proxy.connections >= 2
    assert all(e.type == "video.pending" and e.status.id == "video-op:x:1" for e in received)

    # Starting from a known event id skips what the caller already has.
    async with AsyncLunosClient(key, base_url=service.settings.resolved_public_base_url()) as lunos:
        stream = lunos.video.stream_events(last_event_id=5)
        assert [(await anext(stream)).id for _ in range(2)] == [6, 7]
        await stream.aclose()


# Long enough a run for progress reports every 0.3 s on both sides of the cut.
@pytest.mark.settings(sse_retry_ms=50, simulator_latency_seconds=3, progress_event_seconds=0.3)
async def test_operation_stream_resumes_after_a_forced_disconnect(service) -> None:
    key = await create_user(service, "py-op-resume")
    async with cuttable_proxy(service.settings.resolved_public_base_url()) as proxy:
        async with AsyncLunosClient(key, base_url=proxy.url) as lunos:
            created = await lunos.video.generate("A lion")
            stream = lunos.video.stream_events(created.id)
            # The current state first: the provider took it during the submit.
            first = await anext(stream)
            assert (first.type, first.status.status) == ("video.processing", "processing")
            assert first.id is not None and 1 <= first.status.progress <= 99
            report = await anext(stream)
            assert (report.type, report.id, report.status.status) == ("video.progress", None, "processing")
            assert report.is_transient and report.status.eta_seconds >= 1
            connections = proxy.connections
            proxy.cut()  # right after a report: the resume must go on from the processing event
            rest = [event async for event in stream]  # ends by itself after the final status
    # Nothing replayed twice: the report without an id did not move (or lose) the resume point.
    changes = [e for e in rest if not e.is_progress]
    assert [(e.type, e.status.id) for e in changes] == [("video.completed", created.id)]
    assert changes[0].id > first.id and changes[0].status.progress == 100
    # Reports go on after the resume, rising, each transient.
    reports = [e for e in rest if e.is_progress]
    assert reports and all(e.id is None and e.status.status == "processing" for e in reports)
    figures = [report.status.progress, *(e.status.progress for e in reports)]
    assert figures == sorted(figures) and figures[-1] <= 99
    assert proxy.connections > connections


async def test_generate_and_wait_follows_the_event_stream(service) -> None:
    key = await create_user(service, "py-live")
    log = RequestLog()

    def scenario():
        base = service.settings.resolved_public_base_url()
        with LunosClient(key, base_url=base, http_client=log.sync_client()) as lunos:
            # Polling every 300 s could not finish in time: only the stream can deliver the end.
            return lunos.video.generate_and_wait("A lion", poll_interval=300, max_wait=60)

    with anyio.fail_after(60):
        final = await in_thread(scenario)
    assert final.is_completed and final.video_url
    assert log.paths("POST") == ["/v1/video/generations"]
    assert log.paths("GET") == [f"/v1/video/generations/{final.id}/events"]


async def test_generate_and_wait_by_polling(service) -> None:
    key = await create_user(service, "py-poll")
    log = RequestLog()
    async with AsyncLunosClient(
        key, base_url=service.settings.resolved_public_base_url(), http_client=log.async_client()
    ) as lunos:
        final = await lunos.video.generate_and_wait(
            "A lion", poll_interval=0.1, max_wait=60, use_events=False
        )
    assert final.is_completed
    gets = log.paths("GET")
    assert gets and set(gets) == {f"/v1/video/generations/{final.id}"}


# The server advertises its streams at an address this client cannot reach (a misconfigured proxy,
# a firewall): the wait carries on by polling the API.
@pytest.mark.settings(public_base_url="http://127.0.0.1:9")
async def test_generate_and_wait_falls_back_to_polling(service) -> None:
    key = await create_user(service, "py-fallback")
    log = RequestLog()
    api = f"http://127.0.0.1:{service.settings.port}"

    def scenario():
        with LunosClient(key, base_url=api, max_retries=1, http_client=log.sync_client()) as lunos:
            return lunos.video.generate_and_wait("A lion", poll_interval=0.1, max_wait=60)

    final = await in_thread(scenario)
    assert final.is_completed
    stream_tries = [entry for entry in log.with_api_key if entry[1].endswith("/events")]
    assert stream_tries and all(origin == "127.0.0.1:9" for origin, _, _ in stream_tries)
    # The API key never goes to another origin; the events_url carries its own token.
    assert not any(sent_key for _, _, sent_key in stream_tries)
    assert f"/v1/video/generations/{final.id}" in log.paths("GET")


@pytest.mark.settings(simulator_latency_seconds=3, progress_event_seconds=0.3)
async def test_waits_report_rising_progress_from_events_and_from_polls(service) -> None:
    key = await create_user(service, "py-progress")
    async with AsyncLunosClient(key, base_url=service.settings.resolved_public_base_url()) as lunos:
        for use_events in (True, False):
            # Waiting on one already a second into its run: the stream opens on its stored
            # processing event (progress of its start), older news than the status in hand.
            created = await lunos.video.generate("A lion")
            await anyio.sleep(1.0)
            midway = await lunos.video.get_video_status(created.id)
            assert midway.is_processing and midway.progress >= 20, midway
            seen: list = []
            statuses: list = []
            final = await lunos.video.wait(
                midway,
                poll_interval=0.2,
                max_wait=60,
                use_events=use_events,
                on_status=statuses.append,
                on_progress=seen.append,
            )
            assert final.is_completed and final.progress == 100
            assert [s.status for s in statuses] == ["processing", "completed"], use_events
            figures = [s.progress for s in seen]
            # Each estimate once, only ever rising, never claiming done before it is.
            assert figures[0] == midway.progress and len(figures) >= 3, (use_events, figures)
            assert figures == sorted(set(figures)) and figures[-1] <= 99, (use_events, figures)
            assert all(s.is_processing and s.eta_seconds >= 1 for s in seen)
