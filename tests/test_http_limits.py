"""Unauthenticated exhaustion: what a connection may make `lunos-events serve` hold, over raw sockets.

The server runs as a child process, so its open file descriptors and memory are its own. Timeouts
are scaled down through the settings so the tests stay quick; the figures are the same code's.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lunos_events.runtime import open_runtime
from lunos_events.settings import Settings
from tests.conftest import auth, create_user, free_port, make_settings
from tests.processes import settings_env, spawn
from tests.raw_http import RawConnection, RawResponse
from tests.test_multiprocess_streams import processes, wait_until_up

pytestmark = pytest.mark.anyio

HEAD_TIMEOUT = 0.6
BODY_TIMEOUT = 1.2
KEEP_ALIVE = 0.5


@pytest.fixture
def limited_settings(tmp_path: Path, redis_url: str) -> Settings:
    return make_settings(
        tmp_path,
        redis_url,
        http_head_timeout_seconds=HEAD_TIMEOUT,
        http_body_timeout_seconds=BODY_TIMEOUT,
        http_keep_alive_seconds=KEEP_ALIVE,
        sse_heartbeat_seconds=0.3,
    )


class Server:
    def __init__(self, pid: int, port: int) -> None:
        self.pid = pid
        self.port = port

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    async def connect(self) -> RawConnection:
        return await RawConnection.open("127.0.0.1", self.port)

    async def fds_settle_to(self, expected: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (count := self.open_fds()) > expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return count


@pytest.fixture
async def server(limited_settings: Settings) -> AsyncIterator[Server]:
    port = free_port()
    env = settings_env(limited_settings, LUNOS_PORT=str(port))
    process = spawn("serve", "--port", str(port), env=env)
    with processes(process):
        await wait_until_up(f"http://127.0.0.1:{port}")
        yield Server(process.pid, port)


async def healthz_on(conn: RawConnection) -> int:
    await conn.request("GET", "/healthz", [])
    return (await conn.response()).status


async def trickle(conn: RawConnection, pieces: list[bytes]) -> RawResponse:
    """Send one piece every 0.1 s until the server answers; its answer."""
    answer = asyncio.ensure_future(conn.response(timeout=30))
    for piece in pieces:
        if answer.done():
            break
        await conn.send(piece)
        await asyncio.wait([answer], timeout=0.1)
    return await answer


async def test_a_huge_header_is_refused_and_leaves_no_memory_behind(server: Server) -> None:
    baseline = server.rss_bytes()
    conn = await server.connect()
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: ")
    sent = 0
    try:
        chunk = b"a" * (1 << 20)
        while sent < 128 << 20:
            await conn.send(chunk)
            sent += len(chunk)
    except ConnectionError:
        pass
    assert sent < 128 << 20, "the server read a 128 MB header"
    assert await conn.closed_by_server(timeout=5)
    await conn.close()
    assert server.rss_bytes() < baseline + (16 << 20)

    # Past the bound and then silent: the answer is a 431 JSON error.
    conn = await server.connect()
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * (70 * 1024))
    response = await conn.response()
    assert response.status == 431 and "too large" in response.json()["error"]
    assert await conn.closed_by_server(timeout=2)
    await conn.close()
    # Over the bound in a single write (the server reads it in one go): refused all the same.
    conn = await server.connect()
    await conn.request("GET", "/healthz", [("X-Big", b"a" * (70 * 1024))])
    response = await conn.response()
    assert response.status == 431 and "too large" in response.json()["error"]
    await conn.close()
    # A head just under the bound is served.
    conn = await server.connect()
    await conn.request("GET", "/healthz", [("X-Big", b"a" * (60 * 1024))])
    assert (await conn.response()).status == 200
    await conn.close()


async def test_too_many_headers_are_refused(server: Server) -> None:
    conn = await server.connect()
    await conn.request("GET", "/healthz", [(f"X-H{i}", b"1") for i in range(101)])
    response = await conn.response()
    assert response.status == 431 and "headers" in response.json()["error"]
    assert await conn.closed_by_server(timeout=2)
    await conn.close()
    conn = await server.connect()
    assert await healthz_on(conn) == 200
    await conn.close()


async def test_idle_connections_are_closed_and_their_descriptors_freed(server: Server) -> None:
    baseline = server.open_fds()
    idle = [await server.connect() for _ in range(100)]
    await asyncio.sleep(0.2)
    assert server.open_fds() >= baseline + 95  # (a database connection may come or go meanwhile)
    closed = await asyncio.gather(*(conn.closed_by_server(timeout=HEAD_TIMEOUT + 3) for conn in idle))
    assert all(closed)
    assert await server.fds_settle_to(baseline + 3, timeout=3) <= baseline + 3
    for conn in idle:
        await conn.close()


async def test_a_head_sent_a_byte_at_a_time_times_out(server: Server) -> None:
    conn = await server.connect()
    started = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 100
    response = await trickle(conn, [bytes([byte]) for byte in head])
    assert (response.status, response.json()) == (408, {"error": "Request head not received in time"})
    assert time.monotonic() - started < HEAD_TIMEOUT + 2
    assert await conn.closed_by_server(timeout=2)
    await conn.close()


async def test_a_body_sent_a_byte_at_a_time_times_out(server: Server, limited_settings: Settings) -> None:
    async with open_runtime(limited_settings) as rt:
        key = await create_user(rt, "slow")
    conn = await server.connect()
    await conn.request("GET", "/v1/webhooks", [("Authorization", f"Bearer {key}".encode())])
    assert (await conn.response()).status == 200  # the database connections it needs are open
    await conn.close()
    baseline = server.open_fds()
    conn = await server.connect()
    await conn.send(
        b"POST /v1/webhooks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
    )
    started = time.monotonic()
    response = await trickle(conn, [b" "] * 100)
    assert (response.status, response.json()) == (408, {"error": "Request body not received in time"})
    assert time.monotonic() - started < BODY_TIMEOUT + 2
    assert await conn.closed_by_server(timeout=2)
    await conn.close()
    assert await server.fds_settle_to(baseline + 3, timeout=3) <= baseline + 3


async def test_an_unread_body_after_an_answer_only_closes_the_connection(server: Server) -> None:
    conn = await server.connect()
    await conn.send(b"POST /v1/webhooks HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n{")
    response = await trickle(conn, [b" "] * 5)
    assert response.status == 401  # answered without reading the body
    started = time.monotonic()
    try:
        while time.monotonic() - started < BODY_TIMEOUT + 2 and not conn.reader.at_eof():
            await conn.send(b" ")
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass
    assert await conn.closed_by_server(timeout=1)
    assert time.monotonic() - started < BODY_TIMEOUT + 2
    await conn.close()


async def test_an_idle_keep_alive_connection_closes_after_its_timeout(server: Server) -> None:
    conn = await server.connect()
    assert await healthz_on(conn) == 200
    assert await healthz_on(conn) == 200  # kept alive between requests
    assert await conn.closed_by_server(timeout=KEEP_ALIVE + 2)
    await conn.close()


async def test_an_event_stream_outlives_every_timeout(server: Server, limited_settings: Settings) -> None:
    async with open_runtime(limited_settings) as rt:
        key = await create_user(rt, "streamer")
    conn = await server.connect()
    await conn.request("GET", "/v1/video/events", [(k, v.encode()) for k, v in auth(key).items()])
    response = await conn.response()
    assert response.status == 200
    # Longer than the head, body and keep-alive timeouts together: heartbeats keep arriving.
    deadline = time.monotonic() + HEAD_TIMEOUT + BODY_TIMEOUT + KEEP_ALIVE + 1
    received = b""
    while time.monotonic() < deadline:
        received += await asyncio.wait_for(conn.reader.read(1024), timeout=2)
    assert received.count(b": heartbeat") >= 3
    await conn.close()


@pytest.mark.settings(http_max_connections=10)
async def test_connections_past_the_cap_are_closed_at_once(service, settings: Settings) -> None:
    conns = [await RawConnection.open(settings.host, settings.port) for _ in range(10)]
    refused = await RawConnection.open(settings.host, settings.port)
    assert await refused.closed_by_server(timeout=2)
    await refused.close()
    await conns[0].close()
    await asyncio.sleep(0.1)
    again = await RawConnection.open(settings.host, settings.port)
    assert await healthz_on(again) == 200
    for conn in [again, *conns[1:]]:
        await conn.close()
