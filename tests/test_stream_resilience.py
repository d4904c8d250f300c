"""Streams under trouble: a stalled client, Redis going away and coming back, server shutdown,
an event going out while the first stream of its account opens."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.streams import hub as hub_module
from lunos_events.streams.hub import EventHub
from lunos_events.streams.subscription import Delivery
from tests.conftest import auth, create_user, make_settings
from tests.sse import SseReader, record_events

pytestmark = pytest.mark.anyio


@pytest.mark.settings(sse_queue_size=4, sse_send_timeout_seconds=0.5)
async def test_a_stalled_client_is_cut_off_without_delaying_the_others(settings: Settings) -> None:
    count, padding = 120, 100_000  # ~12 MB: the stalled client's socket buffers fill up long before
    async with running_service(settings, worker=False) as rt:
        key = await create_user(rt, "crowd")
        base = settings.resolved_public_base_url()
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as stalled_client,
            httpx.AsyncClient(base_url=base, timeout=30) as healthy_client,
            stalled_client.stream("GET", "/v1/video/events", headers=auth(key)) as stalled,
            healthy_client.stream("GET", "/v1/video/events", headers=auth(key)) as healthy,
        ):
            healthy_reader = SseReader(healthy)
            received: list[int] = []

            async def read_everything() -> None:
                received.extend(e.seq for e in await healthy_reader.take(count, timeout=60))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read_everything)
                await record_events(rt, "crowd", count, padding=padding)
            assert received == list(range(1, count + 1))

            # The stalled stream was ended by the server: reading it now yields a prefix, then the end.
            stalled_reader = SseReader(stalled)
            got: list[int] = []
            with anyio.fail_after(30):
                try:
                    while (event := await stalled_reader.next()) is not None:
                        got.append(event.seq)
                except httpx.RemoteProtocolError:
                    pass  # cut off mid-frame: the connection was closed under it
            assert got == list(range(1, len(got) + 1)) and len(got) < count

        # Its client resumes where it stopped and gets the rest, in order.
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as client,
            client.stream(
                "GET", "/v1/video/events", headers={**auth(key), "Last-Event-ID": str(len(got))}
            ) as resumed,
        ):
            rest = await SseReader(resumed).take(count - len(got), timeout=60)
            assert [e.seq for e in rest] == list(range(len(got) + 1, count + 1))


async def test_streams_survive_a_redis_restart(tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis")
    redis_server.start()
    try:
        settings = make_settings(tmp_path, redis_server.url)
        async with running_service(settings, worker=False) as rt:
            key = await create_user(rt, "patient")
            async with (
                httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
                client.stream("GET", "/v1/video/events", headers=auth(key)) as response,
            ):
                reader = SseReader(response)
                await record_events(rt, "patient", 1)
                assert (await reader.next()).seq == 1

                redis_server.stop()
                # Stored while Redis is away: the publish fails and the events wait in the store.
                stranded = await record_events(rt, "patient", 2)
                redis_server.start()  # same port: the hub re-subscribes and catches up from the store
                assert [e.seq for e in await reader.take(2, timeout=20)] == [2, 3]
                assert [e.seq for e in stranded] == [2, 3]

                # Live again: new events arrive through pub/sub as before.
                await record_events(rt, "patient", 1)
                assert (await reader.next()).seq == 4
    finally:
        redis_server.stop()


async def test_server_shutdown_ends_open_streams_cleanly(settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client:
        # Shutdown (leaving the block) must not wait for the stream's client to go away.
        with anyio.fail_after(20):
            async with running_service(settings, worker=False) as rt:
                key = await create_user(rt, "leaving")
                request = client.build_request("GET", "/v1/video/events", headers=auth(key))
                response = await client.send(request, stream=True)
                reader = SseReader(response)
                await record_events(rt, "leaving", 1)
                assert (await reader.next()).seq == 1
        # The response was finished properly (no reset): the stream simply ends.
        with anyio.fail_after(5):
            assert await reader.next() is None
        await response.aclose()


async def test_an_event_published_while_the_first_stream_of_an_account_opens_reaches_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_runtime(settings) as rt:
        await accounts.create_account(rt.store, "opening", 0, "dev")
        hub = EventHub(queue_size=16, heartbeat_seconds=60)
        async with hub.running(rt.bus.redis, settings.events_channel, rt.store):
            read_last_seq = hub_module.last_event_seq

            async def read_then_publish(store, account_id: str) -> int:  # type: ignore[no-untyped-def]
                high = await read_last_seq(store, account_id)
                # The window: stored and published after the read, before the account has a feed.
                await record_events(rt, account_id, 1)
                await anyio.sleep(0.5)  # the hub has received the message by now (and passed it over)
                return high

            monkeypatch.setattr(hub_module, "last_event_seq", read_then_publish)
            subscription = await hub.subscribe("opening")
            with anyio.fail_after(3):
                delivery = await subscription.next()
            assert isinstance(delivery, Delivery) and delivery.event.seq == 1


async def test_the_hub_listens_as_soon_as_redis_confirms_its_subscription(settings: Settings) -> None:
    async with open_runtime(settings) as rt:
        hub = EventHub(queue_size=8, heartbeat_seconds=15, liveness_seconds=30)
        # Start-up waits up to 5 s for the subscription: it must be confirmed at once, not timed out.
        with anyio.fail_after(3):
            async with hub.running(rt.bus.redis, settings.events_channel, rt.store):
                assert hub.connected.is_set() and hub.reconnects == 0


async def test_a_hub_too_busy_for_its_messages_drops_the_subscription_and_catches_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "INBOX_LIMIT", 5)
    async with open_runtime(settings) as rt:
        hub = EventHub(queue_size=8, heartbeat_seconds=15, liveness_seconds=30)
        busy = anyio.Event()
        receive = hub._receive

        async def stalled(raw: bytes) -> None:
            await busy.wait()  # a database read that takes its time
            await receive(raw)

        monkeypatch.setattr(hub, "_receive", stalled)
        async with hub.running(rt.bus.redis, settings.events_channel, rt.store):
            await hub.subscribe("nobody")  # a stream is open, so messages wait for the hub
            for n in range(8):
                await rt.bus.redis.publish(settings.events_channel, b'{"not": "an event %d"}' % n)
            channel = settings.events_channel.encode()
            # Past the limit the subscription goes, rather than the messages piling up in memory.
            with anyio.fail_after(10):
                while await rt.bus.redis.pubsub_numsub(channel) != [(channel, 0)]:
                    await anyio.sleep(0.02)
            busy.set()  # the hub notices once its read is done, and subscribes again
            with anyio.fail_after(10):
                while await rt.bus.redis.pubsub_numsub(channel) != [(channel, 1)]:
                    await anyio.sleep(0.02)
            assert hub.reconnects == 1
