"""The production shape's figures: `lunos-events stack` (2 API replicas behind nginx, 2 workers,
PostgreSQL, Redis) against one API process reached directly, in the same run.

    .venv/bin/python bench/stack.py [--seconds 4] [--rounds 3] [--connections 32] [--subscribers 10000]

- Polls and submits per second (p50, p99) through nginx to both replicas, and straight to one
  replica, with the load generator of bench/http.py (raw keep-alive HTTP/1.1, one process).
- SSE fan-out: `--subscribers` account streams opened through nginx, which spreads them over the
  replicas; one status change, then the time until every subscriber has it (p50, p99, max). The
  clients are bench/sse_fanout.py's.
Recovery times after each fault are measured by bench/chaos.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/http.py would shadow the
# standard library's `http`: the project root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import json
import time
from collections import Counter

from bench.common import bench_workdir, free_port, percentile, raise_fd_limit
from bench.http import SUBMIT_BODY, bench_accounts, measure, one_operation_per_key, request_bytes, show
from bench.sse_fanout import ACCOUNT, last_event_seq, pending_operation, start_client_processes
from lunos_events.ids import api_key_hash
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.settings import Settings
from lunos_events.stack.stack import ProductionStack, StackOptions
from lunos_events.store.models import COMPLETED
from lunos_events.streams.tokens import StreamTokenSigner

STACK_SETTINGS = {
    "LUNOS_PROVIDER": "local",
    # Generations stay pending: the workers' polls do not compete with the measured API processes.
    "LUNOS_SIMULATOR_LATENCY_SECONDS": "3600",
    "LUNOS_POLL_INTERVAL_SECONDS": "60",
    "LUNOS_DATABASE_POOL_SIZE": "40",
    "LUNOS_TIERS": json.dumps(
        {
            "bench": {
                "submits_per_minute": 10**9,
                "max_in_flight": 10**9,
                "max_streams": 10**9,
                "reads_per_minute": 10**9,
            }
        }
    ),
}


def runtime_settings(stack: ProductionStack) -> Settings:
    env = stack.environment()
    return Settings(
        database_url=env["LUNOS_DATABASE_URL"],
        redis_url=env["LUNOS_REDIS_URL"],
        stream_token_secret=env["LUNOS_STREAM_TOKEN_SECRET"],
        data_dir=stack.data_dir / "bench",
    )


def throughput(stack: ProductionStack, keys: list[str], args: argparse.Namespace) -> None:
    ids = one_operation_per_key(stack.options.port, keys)

    def polls(port: int) -> list[bytes]:
        return [
            request_bytes("GET", f"/v1/video/generations/{op}", port, {"Authorization": f"Bearer {key}"})
            for op, key in zip(ids, keys, strict=True)
        ]

    def submits(port: int) -> list[bytes]:
        path = "/v1/video/generations"
        return [
            request_bytes("POST", path, port, {"Authorization": f"Bearer {key}"}, SUBMIT_BODY) for key in keys
        ]

    targets = {"nginx -> 2 API": stack.options.port, "1 API direct": stack.api_ports[0]}
    for name, build in (("poll", polls), ("submit", submits)):
        print(
            f"{name} ({args.connections} connections, {args.rounds} rounds of {args.seconds:.0f} s, median):"
        )
        rates: dict[str, float] = {}
        for target, port in targets.items():
            results = [measure(port, build(port), args.connections, args.seconds) for _ in range(args.rounds)]
            middle = sorted(results, key=lambda r: r.rate)[len(results) // 2]
            rates[target] = middle.rate
            print(show(target, middle))
        print(f"  nginx -> 2 API / 1 API direct: {rates['nginx -> 2 API'] / rates['1 API direct']:.2f}x")


async def fanout(stack: ProductionStack, subscribers: int, client_processes: int) -> None:
    settings = runtime_settings(stack)
    async with open_runtime(settings) as rt:
        await accounts.create_account(rt.store, ACCOUNT, 0, "bench")
        key = await accounts.create_api_key(rt.store, ACCOUNT)  # a token is worth what its key is
        op_id: str = await pending_operation(rt, 999_999)
        token = StreamTokenSigner(settings.stream_token_secret or "", 3600).for_account(
            ACCOUNT, key_hash=api_key_hash(key)
        )
        path = f"/v1/video/events?token={token}"
        pipes, children = start_client_processes(
            subscribers, client_processes, "127.0.0.1", stack.options.port, path
        )
        opened = time.monotonic()
        connected = sum([(await asyncio.to_thread(p.recv))[1] for p in pipes])
        opened = time.monotonic() - opened
        spread = await streams_per_replica(stack)
        seq = await last_event_seq(rt.store, ACCOUNT) + 1
        for p in pipes:
            p.send(f"id: {seq}\r\n".encode())
        await asyncio.sleep(1)
        started = time.perf_counter()
        await rt.generations.lifecycle.finish(op_id, COMPLETED, video_url="http://example.invalid/v.mp4")
        received: list[float] = []
        for p in pipes:
            received += (await asyncio.to_thread(p.recv))[1]
        for p in pipes:
            p.send("close")
        for child in children:
            child.join(timeout=30)
    delays = [t - started for t in received]
    print(
        f"SSE fan-out through nginx: {connected} account streams "
        f"(opened in {opened:.1f} s; open per replica: {spread})"
    )
    print(
        f"  status change -> every subscriber: p50 {percentile(delays, 0.5) * 1000:.0f} ms   "
        f"p99 {percentile(delays, 0.99) * 1000:.0f} ms   max {max(delays) * 1000:.0f} ms"
    )


async def streams_per_replica(stack: ProductionStack) -> dict[str, int]:
    """Open SSE streams per replica, from each one's /metrics."""
    import httpx

    spread: Counter[str] = Counter()
    async with httpx.AsyncClient() as http:
        for replica, name in enumerate(stack.api_names):
            text = (await http.get(f"{stack.api_url(replica)}/metrics")).text
            for line in text.splitlines():
                if line.startswith("lunos_sse_connections"):
                    spread[name] += int(float(line.rsplit(" ", 1)[1]))
    return dict(spread)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=10000)
    parser.add_argument("--client-processes", type=int, default=2)
    args = parser.parse_args()
    raise_fd_limit()  # inherited by the stack's processes: thousands of streams each
    workdir = bench_workdir("lunos-stack-bench-")
    stack = ProductionStack(StackOptions(workdir / "stack", 2, 2, free_port(), STACK_SETTINGS))
    stack.start()
    try:
        keys = asyncio.run(bench_accounts(runtime_settings(stack), args.accounts))
        throughput(stack, keys, args)
        if args.subscribers:
            asyncio.run(fanout(stack, args.subscribers, args.client_processes))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
