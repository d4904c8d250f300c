"""SSE fan-out: N idle subscribers on ONE API process, one status change, time until all have it.

    .venv/bin/python bench/sse_fanout.py                      # 2,000 subscribers
    .venv/bin/python bench/sse_fanout.py --subscribers 10000  # the target: p99 < 0.5 s, <= 20 KB/conn

Runs a real `lunos-events serve` process (uvloop + httptools) on the embedded default (redis-server,
SQLite), or with `--database postgres` on a private PostgreSQL and Debian's redis-server. This
process plays the worker: it records status changes through the same code the worker runs
(`Lifecycle.finish`: commit the change and its event, publish on Redis).
Subscribers are raw asyncio sockets spread over client processes, so the client is not the
bottleneck; each opens the account stream with a stream token and waits for the event's `id:`.

Printed, with baselines measured in the same run:
  * fan-out: time from the status change to each subscriber receiving it (p50/p99/max), and its
    p99 against the single-subscriber p50;
  * server RSS per idle connection: (RSS with N streams open - RSS before) / N;
  * one subscriber: status change -> client receive latency, against a bare Redis pub/sub round trip.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/http.py would shadow the
# standard library's `http`: the project root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import multiprocessing
import secrets
import select
import socket
import statistics
import time
from multiprocessing.connection import Connection

import httpx

from bench.common import (
    DATABASES,
    backing_servers,
    bench_workdir,
    child_env,
    cpu_seconds,
    fmt_ms,
    free_port,
    percentile,
    raise_fd_limit,
    rss_kb,
    start_lunos,
)
from lunos_events.ids import api_key_hash, now_ms
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.services.events import append_event, last_event_seq
from lunos_events.services.lifecycle import NewOperation, create_operation
from lunos_events.settings import Settings, TierLimits
from lunos_events.store.models import COMPLETED
from lunos_events.streams.tokens import StreamTokenSigner

ACCOUNT = "bench"


# ---------------------------------------------------------------- client processes


async def _open_stream(
    host: str, port: int, request: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    await reader.readuntil(b"retry: ")  # the stream is registered once its first frame is out
    return reader, writer


class RawClients:
    """Many SSE connections on plain non-blocking sockets and one epoll: a few microseconds of
    client CPU per connection, so the clients (sharing the machine) measure the server, not themselves."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.address = (host, port)
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        self.epoll = select.epoll()
        self.sockets: dict[int, socket.socket] = {}
        self.buffers: dict[int, bytes] = {}

    def open(self, count: int, batch: int = 200) -> None:
        """Open `count` streams, `batch` at a time; each is ready once its first frame arrived."""
        while count > 0:
            opening = {}
            for _ in range(min(batch, count)):
                sock = socket.create_connection(self.address)
                sock.sendall(self.request)
                sock.setblocking(False)
                opening[sock.fileno()] = sock
                self.buffers[sock.fileno()] = b""
                self.epoll.register(sock.fileno(), select.EPOLLIN)
            while opening:
                for fd, _ in self.epoll.poll(10):
                    data = opening[fd].recv(65536)
                    if not data:
                        raise RuntimeError("the server closed a stream while it was opening")
                    self.buffers[fd] += data
                    if b"retry: " in self.buffers[fd]:
                        if not self.buffers[fd].startswith(b"HTTP/1.1 200"):
                            raise RuntimeError(self.buffers[fd].split(b"\r\n", 1)[0].decode())
                        self.sockets[fd] = opening.pop(fd)
                        self.buffers[fd] = b""
            count -= batch

    def wait_for(self, marker: bytes, timeout: float) -> list[float]:
        """perf_counter() at which each stream received `marker` (CLOCK_MONOTONIC: comparable across
        processes on Linux)."""
        waiting = set(self.sockets)
        received = []
        deadline = time.monotonic() + timeout
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} streams did not receive {marker!r}")
            for fd, _ in self.epoll.poll(1):
                data = self.sockets[fd].recv(65536)
                if fd not in waiting:
                    continue
                self.buffers[fd] = buffered = self.buffers[fd] + data
                if marker in buffered:
                    received.append(time.perf_counter())
                    waiting.discard(fd)
                    self.buffers[fd] = b""
        return received

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.epoll.close()


def client_process(count: int, host: str, port: int, path: str, pipe: Connection) -> None:
    raise_fd_limit()
    clients = RawClients(host, port, path)
    clients.open(count)
    pipe.send(("connected", len(clients.sockets)))
    marker = pipe.recv()  # b"id: <seq>": sent before the status change happens
    pipe.send(("received", clients.wait_for(marker, timeout=120)))
    pipe.recv()  # close
    clients.close()


def start_client_processes(
    subscribers: int, processes: int, host: str, port: int, path: str
) -> tuple[list[Connection], list[multiprocessing.process.BaseProcess]]:
    """`subscribers` streams opened by `processes` client processes: their pipes and processes."""
    context = multiprocessing.get_context("spawn")
    per_process = [subscribers // processes] * processes
    per_process[0] += subscribers - sum(per_process)
    pipes, children = [], []
    for count in per_process:
        parent_end, child_end = context.Pipe()
        child = context.Process(target=client_process, args=(count, host, port, path, child_end), daemon=True)
        child.start()
        pipes.append(parent_end)
        children.append(child)
    return pipes, children


# ---------------------------------------------------------------- the server under test


async def pending_operation(rt, index: int) -> str:  # type: ignore[no-untyped-def]
    created = now_ms()
    op = NewOperation(
        id=f"video-op:{ACCOUNT}:{created}{index:06d}",
        account_id=ACCOUNT,
        app_id="bench",
        model="google/veo-3.0-generate-preview",
        provider_model="veo-3.0-generate-preview",
        prompt="bench",
        parameters={"aspectRatio": "16:9", "durationSeconds": 8},
        video_key=f"{ACCOUNT}/{created}-{index}-video.mp4",
        cost_cents=0,
        created_at_ms=created,
        deadline_at_ms=created + 900_000,
    )
    async with rt.store.transaction() as tx:
        await create_operation(tx, op)
    return op.id


async def one_subscriber_latency(rt, base: str, path: str, samples: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Worker publish -> one SSE client receives: each event is stored as the worker stores it, then
    timed from `outbox.release` (publish on Redis, as the worker does) to the client reading it."""
    host, port = base.removeprefix("http://").split(":")
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    reader, writer = await _open_stream(host, int(port), request)
    latencies = []
    try:
        for i in range(samples):
            async with rt.store.transaction() as tx:
                event = await append_event(
                    tx,
                    account_id=ACCOUNT,
                    operation_id=f"video-op:{ACCOUNT}:{i}",
                    app_id="bench",
                    type="video.completed",
                    data={
                        "id": f"video-op:{ACCOUNT}:{i}",
                        "status": "completed",
                        "video_url": "http://x/v.mp4",
                    },
                )
            receipt = asyncio.ensure_future(_read_until(reader, f"id: {event.seq}\r\n".encode()))
            started = time.perf_counter()
            await rt.generations.outbox.release(event)
            latencies.append(await receipt - started)
    finally:
        writer.close()
    return latencies


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> float:
    await reader.readuntil(marker)
    return time.perf_counter()


async def bare_pubsub_latency(rt, samples: int) -> list[float]:  # type: ignore[no-untyped-def]
    """The floor: publish on Redis -> a plain pub/sub subscriber in this process receives it."""
    from redis.asyncio import Redis

    client = Redis.from_url(rt.settings.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("bench:baseline")
    latencies = []
    try:
        for i in range(samples):
            started = time.perf_counter()
            await rt.bus.redis.publish("bench:baseline", str(i))
            while await pubsub.get_message(timeout=5) is None:
                pass
            latencies.append(time.perf_counter() - started)
    finally:
        await pubsub.aclose()
        await client.aclose()
    return latencies


async def run(args: argparse.Namespace) -> None:
    hard = raise_fd_limit()
    if args.subscribers + 100 > hard:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is too low for {args.subscribers} subscribers")
    workdir = bench_workdir("lunos-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    secret = secrets.token_hex(32)
    with backing_servers(workdir, args.database) as (database_url, redis_url):
        settings = Settings(
            data_dir=workdir / "data",
            port=port,
            database_url=database_url,
            redis_url=redis_url,
            stream_token_secret=secret,
            sse_heartbeat_seconds=args.heartbeat,
            # Thousands of streams of one account: the per-account stream cap is not what is measured.
            tiers={"bench": TierLimits(submits_per_minute=0, max_in_flight=0, max_streams=10**9)},
        )
        env = child_env(settings.as_env())

        async with open_runtime(settings) as rt:
            await accounts.create_account(rt.store, ACCOUNT, 0, "bench")
            key = await accounts.create_api_key(rt.store, ACCOUNT)  # a token is worth what its key is
            op_id = await pending_operation(rt, 999_999)
            token = StreamTokenSigner(secret, 3600).for_account(ACCOUNT, key_hash=api_key_hash(key))
            path = f"/v1/video/events?token={token}"

            server = start_lunos("serve", env, f"{base}/healthz")
            try:
                await fanout(args, rt, server, base, path, op_id)
                single = await one_subscriber_latency(rt, base, path, args.samples)
                floor = await bare_pubsub_latency(rt, args.samples)
            finally:
                server.terminate()
                server.wait(timeout=30)
    report_latency(single, floor)


async def fanout(args, rt, server, base: str, path: str, op_id: str) -> None:  # type: ignore[no-untyped-def]
    # Warm the server up (imports, first DB and Redis use) before measuring its baseline RSS.
    async with httpx.AsyncClient(base_url=base) as http:
        async with http.stream("GET", path) as response:
            async for _ in response.aiter_bytes():
                break
    await asyncio.sleep(0.5)
    rss_before = rss_kb(server.pid)

    host, port = base.removeprefix("http://").split(":")
    pipes, children = start_client_processes(args.subscribers, args.client_processes, host, int(port), path)
    connect_started = time.monotonic()
    connected = sum([(await asyncio.to_thread(p.recv))[1] for p in pipes])
    connect_seconds = time.monotonic() - connect_started
    await asyncio.sleep(2)  # let the server settle before reading its memory
    rss_after = rss_kb(server.pid)

    # Clients learn the event id first, so they are already waiting when it arrives.
    seq = await last_event_seq(rt.store, ACCOUNT) + 1
    for p in pipes:
        p.send(f"id: {seq}\r\n".encode())
    await asyncio.sleep(0.5)
    cpu_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    event = await rt.generations.lifecycle.finish(op_id, COMPLETED, video_url="http://example.invalid/v.mp4")
    assert event is not None and event.seq == seq
    received: list[float] = []
    for p in pipes:
        received += (await asyncio.to_thread(p.recv))[1]
    server_cpu = cpu_seconds(server.pid) - cpu_before
    for p in pipes:
        p.send("close")
    for child in children:
        child.join(timeout=30)
    delays = [t - started for t in received]

    per_conn = (rss_after - rss_before) / connected
    print(
        f"SSE fan-out on one API process: {connected} subscribers ({args.client_processes} client processes)"
    )
    print(f"  connecting all took {connect_seconds:.1f} s")
    print(
        f"  server RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB with the streams open"
    )
    print(
        f"  RSS per idle connection: {per_conn:.1f} KB   "
        f"(target <= 20 KB: {'ok' if per_conn <= 20 else 'MISSED'})"
    )
    print("  status change -> received by every subscriber:")
    print(
        f"    p50 {fmt_ms(percentile(delays, 0.5))}   p99 {fmt_ms(percentile(delays, 0.99))}   "
        f"max {fmt_ms(max(delays))}"
    )
    p99 = percentile(delays, 0.99)
    print(
        f"    server CPU for the fan-out: {server_cpu * 1000:.0f} ms "
        f"({server_cpu / connected * 1e6:.1f} us per subscriber)"
    )
    print(f"    target p99 < 500 ms: {'ok' if p99 < 0.5 else 'MISSED'}")
    fanout.p99 = p99  # type: ignore[attr-defined]


def report_latency(single: list[float], floor: list[float]) -> None:
    single_p50, floor_p50 = statistics.median(single), statistics.median(floor)
    print(f"One subscriber, {len(single)} events (worker publish -> SSE client receives):")
    print(
        f"    p50 {fmt_ms(single_p50)}   p99 {fmt_ms(percentile(single, 0.99))}   max {fmt_ms(max(single))}"
    )
    print(
        f"  baseline, bare Redis pub/sub round trip: p50 {fmt_ms(floor_p50)}   "
        f"p99 {fmt_ms(percentile(floor, 0.99))}"
    )
    print(f"  ratio p50 / baseline p50: {single_p50 / floor_p50:.1f}x")
    p99 = getattr(fanout, "p99", None)
    if p99 is not None:
        print(f"  fan-out p99 / one-subscriber p50: {p99 / single_p50:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--samples", type=int, default=200, help="status changes for the one-subscriber latency"
    )
    parser.add_argument("--heartbeat", type=float, default=15.0, help="server heartbeat interval (seconds)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
