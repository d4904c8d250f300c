"""Revocation that bites: a revoked key's open streams end, on every API process, and its tokens fail.

Two `lunos-events serve` processes share one Redis and one database. The key is revoked with the
real `lunos-events keys revoke` command (which announces it on Redis), or behind the processes'
backs in the database alone, as when that message is lost: then their periodic key check ends the
streams.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.settings import Settings
from tests.conftest import auth, create_user, free_port, make_settings
from tests.helpers import generation_body
from tests.processes import run, settings_env, spawn
from tests.sse import SseReader
from tests.test_multiprocess_streams import processes, wait_until_up

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_api_processes(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    port_a, port_b = free_port(), free_port()
    with processes(
        spawn("serve", "--port", str(port_a), env=settings_env(settings, LUNOS_PORT=str(port_a))),
        spawn("serve", "--port", str(port_b), env=settings_env(settings, LUNOS_PORT=str(port_b))),
    ):
        base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        await wait_until_up(base_a)
        await wait_until_up(base_b)
        async with (
            httpx.AsyncClient(base_url=base_a, timeout=30) as on_a,
            httpx.AsyncClient(base_url=base_b, timeout=30) as on_b,
        ):
            yield on_a, on_b


async def ends_within(reader: SseReader, seconds: float) -> float:
    """How long the stream took to end (heartbeats aside); fails if it is still open after `seconds`."""
    started = time.monotonic()
    assert await reader.next(timeout=seconds) is None, "an event arrived instead of the end"
    return time.monotonic() - started


async def still_open(reader: SseReader, seconds: float) -> bool:
    try:
        await reader.next(timeout=seconds)
    except TimeoutError:
        return True
    return False


class Streams:
    """The streams of one key, on both processes, and one of another key of the same account."""

    def __init__(self, stack: AsyncExitStack, on_a: httpx.AsyncClient, on_b: httpx.AsyncClient) -> None:
        self.stack, self.on_a, self.on_b = stack, on_a, on_b

    async def open(
        self, client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
    ) -> SseReader:
        response = await self.stack.enter_async_context(client.stream("GET", path, headers=headers))
        assert response.status_code == 200, await response.aread()
        return SseReader(response)


async def refusal(client: httpx.AsyncClient, path: str) -> tuple[int, object]:
    """The status and JSON body of a stream request expected to be refused (an opened stream is not read)."""
    async with client.stream("GET", path) as response:
        if response.status_code == 200:
            return 200, None
        return response.status_code, (await response.aread()) and response.json()


def relative(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def open_every_kind(streams: Streams, key: str) -> tuple[list[SseReader], list[str]]:
    """The account stream by key on A and B, an operation's stream by its events_url token on B,
    and the account stream by a minted token on A; and those token paths."""
    on_a, on_b = streams.on_a, streams.on_b
    submitted = await on_a.post("/v1/video/generations", headers=auth(key), json=generation_body())
    assert submitted.status_code == 200, submitted.text
    operation_path = relative(submitted.json()["events_url"])
    minted = await on_b.post("/v1/video/stream-tokens", headers=auth(key))
    account_path = relative(minted.json()["events_url"])
    readers = [
        await streams.open(on_a, "/v1/video/events", auth(key)),
        await streams.open(on_b, "/v1/video/events", auth(key)),
        await streams.open(on_b, operation_path),
        await streams.open(on_a, account_path),
    ]
    first = await readers[2].next()
    assert first is not None and first.json()["status"] == "processing"  # started at its submit
    return readers, [operation_path, account_path]


@pytest.fixture
def slow_check_settings(tmp_path: Path, redis_url: str) -> Settings:
    # The database check is set far off: only the announcement on Redis can end the streams in time.
    return make_settings(tmp_path, redis_url, stream_key_check_seconds=300, sse_heartbeat_seconds=0.5)


async def test_revoking_a_key_ends_its_streams_on_every_process_and_its_tokens_fail(
    slow_check_settings: Settings,
) -> None:
    settings = slow_check_settings
    async with open_runtime(settings) as rt:
        key = await create_user(rt, "revokee")
        other_key = await accounts.create_api_key(rt.store, "revokee")
    async with two_api_processes(settings) as (on_a, on_b), AsyncExitStack() as stack:
        streams = Streams(stack, on_a, on_b)
        readers, token_paths = await open_every_kind(streams, key)
        survivor = await streams.open(on_b, "/v1/video/events", auth(other_key))

        revoked = run("keys", "revoke", key[:12], env=settings_env(settings))
        assert revoked.returncode == 0, revoked.stderr
        assert "end now" in revoked.stdout

        for reader in readers:
            assert await ends_within(reader, seconds=3) < 3
        assert await still_open(survivor, seconds=1.5)  # the account's other key is untouched
        for client in (on_a, on_b):
            assert (await client.get("/v1/account", headers=auth(key))).status_code == 401
            for path in token_paths:
                assert await refusal(client, path) == (401, {"error": "Invalid or expired stream token"})
        assert (await on_a.get("/v1/account", headers=auth(other_key))).status_code == 200


@pytest.fixture
def fast_check_settings(tmp_path: Path, redis_url: str) -> Settings:
    return make_settings(tmp_path, redis_url, stream_key_check_seconds=0.5, sse_heartbeat_seconds=0.5)


async def test_a_revocation_never_announced_is_found_in_the_database(fast_check_settings: Settings) -> None:
    """The account's last key revoked in the database only (a lost message): its streams still end."""
    settings = fast_check_settings
    async with open_runtime(settings) as rt:
        key = await create_user(rt, "lastkey")
    async with two_api_processes(settings) as (on_a, on_b), AsyncExitStack() as stack:
        readers, token_paths = await open_every_kind(Streams(stack, on_a, on_b), key)
        async with open_runtime(settings) as rt:
            await accounts.revoke_api_key(rt.store, key)  # nothing is published
        for reader in readers:
            assert await ends_within(reader, seconds=4) < 4
        for client in (on_a, on_b):
            for path in token_paths:
                assert (await refusal(client, path))[0] == 401
