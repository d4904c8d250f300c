"""Webhook delivery benchmark: signed deliveries per second from ONE worker process to a local
receiver, and completion → receipt latency, each printed against a baseline measured in the same run.

    .venv/bin/python bench/webhooks.py [--deliveries 3000] [--latency-events 200] [--rate 50]
    .venv/bin/python bench/webhooks.py --database postgres   # a private PostgreSQL and redis-server

- Throughput: N completion events are stored (each creates its delivery in the same transaction)
  and queued; then one `lunos-events worker` process starts and sends them. Rate = deliveries
  between the first and the last receipt. Baseline: one process POSTing the same signed body to
  the same receiver as fast as it can with the same concurrency (aiohttp, no queue, no database).
- Latency: with the worker running, events are stored and released one by one at `--rate`/s the
  way a completing operation does; latency = receipt time - event time. Baseline: the round trip
  of a bare aiohttp POST to the same receiver.
The receiver is a separate process (uvicorn + Starlette) that only records receipts.
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
import os
import subprocess
import time

import aiohttp
import httpx

from bench.common import DATABASES, ROOT, backing_servers, bench_workdir, child_env
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.services.events import append_event
from lunos_events.settings import Settings
from lunos_events.webhooks import endpoints
from lunos_events.webhooks.signing import WebhookSigner, new_secret

RECEIVER_SOURCE = """
import sys, time
from datetime import datetime
import json, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

received = {}

async def hook(request):
    now = time.time()
    body = await request.body()
    sent = datetime.fromisoformat(json.loads(body)["timestamp"]).timestamp()
    received.setdefault(request.headers["webhook-id"], (now, now - sent))
    return Response(status_code=204)

async def stats(request):
    return JSONResponse(list(received.values()))

async def reset(request):
    received.clear()
    return Response(status_code=204)

app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/stats", stats),
                        Route("/reset", reset, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def wait_http(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def receipts(base: str) -> list[list[float]]:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{base}/stats")).json()


async def wait_receipts(base: str, count: int, timeout: float) -> list[list[float]]:
    deadline = time.monotonic() + timeout
    while True:
        got = await receipts(base)
        if len(got) >= count or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


async def count_attempts(rt) -> int:
    from sqlalchemy import func, select

    from lunos_events.store.webhook_models import WebhookAttempt

    async with rt.store.reading() as conn:
        return (await conn.execute(select(func.count()).select_from(WebhookAttempt))).scalar_one()


async def reset(base: str) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(f"{base}/reset")


async def baseline_throughput(url: str, count: int, concurrency: int) -> float:
    """The same signed POSTs with the worker's HTTP client library, no queue and no database."""
    body = json.dumps({"type": "video.completed", "timestamp": "2026-01-01T00:00:00Z", "data": {}}).encode()
    signer = WebhookSigner([new_secret()])
    remaining = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def loop() -> None:
            for i in remaining:
                headers = signer.headers(f"base_{i}", int(time.time()), body)
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


async def arq_noop_rate(redis_url: str, count: int, concurrency: int) -> float:
    """The queue's own ceiling: arq jobs that do nothing, same Redis, same worker settings."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    finished = 0

    async def noop(ctx: dict, i: int) -> None:
        nonlocal finished
        finished += 1

    settings = RedisSettings.from_dsn(redis_url)
    pool = await create_pool(settings, default_queue_name="bench:noop")
    for i in range(count):
        await pool.enqueue_job("noop", i, _job_id=f"noop:{i}")
    await pool.aclose()
    worker = Worker(
        functions=[func(noop, name="noop", keep_result=0)],
        redis_pool=await create_pool(settings),
        queue_name="bench:noop",
        max_jobs=concurrency,
        poll_delay=0.05,
        keep_result=0,
        handle_signals=False,
    )
    started = time.perf_counter()
    task = asyncio.create_task(worker.async_run())
    while finished < count:
        await asyncio.sleep(0.01)
    rate = count / (time.perf_counter() - started)
    # The last jobs are still finishing (arq's shielded bookkeeping): close() would cancel them.
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    await worker.close()
    task.cancel()
    return rate


async def baseline_latency(url: str, count: int, rate: float) -> list[float]:
    body = json.dumps({"type": "video.completed", "timestamp": "2026-01-01T00:00:00Z", "data": {}}).encode()
    times = []
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"webhook-id": f"lat_{i}"}) as response:
                await response.read()
            times.append(time.perf_counter() - started)
            await asyncio.sleep(1 / rate)
    return times


async def store_events(rt, account_id: str, count: int, first_op: int) -> list:
    events = []
    for i in range(count):
        async with rt.store.transaction() as tx:
            event = await append_event(
                tx,
                account_id=account_id,
                operation_id=f"video-op:{account_id}:{first_op + i}",
                app_id=None,
                type="video.completed",
                data={
                    "id": f"video-op:{account_id}:{first_op + i}",
                    "status": "completed",
                    "video_url": "x",
                },
            )
        events.append(event)
    return events


def spawn_worker(settings: Settings) -> subprocess.Popen:
    env = child_env(settings.as_env())
    return subprocess.Popen(
        [
            sys.executable,
            *(
                ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
                if os.environ.get("BENCH_PROFILE")
                else []
            ),
            "-m",
            "lunos_events",
            "worker",
        ],
        env=env,
        cwd=ROOT,
        stderr=None if os.environ.get("BENCH_WORKER_LOG") else subprocess.DEVNULL,
    )


async def run(
    args: argparse.Namespace, work: Path, database_url: str | None, redis_url: str, base: str
) -> dict[str, object]:
    worker = None
    try:
        await wait_http(f"{base}/stats")
        settings = Settings(
            data_dir=work / "data",
            database_url=database_url,
            redis_url=redis_url,
            queue_name="bench:webhooks",
            events_channel="bench:events",
            webhook_allow_private=True,
        )
        async with open_runtime(settings) as rt:
            await accounts.create_account(rt.store, "bench", 0, "free")
            cap = rt.settings.tier_limits("free").max_webhook_endpoints
            await endpoints.create_endpoint(rt, "bench", {"url": f"{base}/hook"}, cap)

            # Throughput: queue everything first, then start one worker process.
            events = await store_events(rt, "bench", args.deliveries, 0)
            if any(event.deliveries for event in events):
                await rt.bus.enqueue_drain()
            worker = spawn_worker(settings)
            got = await wait_receipts(base, args.deliveries, timeout=600)
            stamps = sorted(r[0] for r in got)
            delivered_rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
            attempts = await count_attempts(rt)
            await reset(base)
            baseline_rate = await baseline_throughput(
                f"{base}/hook", args.deliveries, settings.worker_max_jobs
            )
            noop_rate = await arq_noop_rate(redis_url, args.deliveries, settings.worker_max_jobs)
            await reset(base)

            # Latency: events released one by one, as completing operations do.
            await store_events_paced(rt, args.latency_events, args.rate)
            got = await wait_receipts(base, args.latency_events, timeout=120)
            latencies = [r[1] for r in got]
            bare = await baseline_latency(f"{base}/hook", args.latency_events, args.rate)
    finally:
        if worker is not None:
            stop(worker)
    return {
        "concurrency": settings.worker_max_jobs,
        "delivered_rate": delivered_rate,
        "baseline_rate": baseline_rate,
        "noop_rate": noop_rate,
        "attempts": attempts,
        "latencies": latencies,
        "bare": bare,
    }


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


def report(args: argparse.Namespace, result: dict) -> None:
    delivered_rate, baseline_rate = result["delivered_rate"], result["baseline_rate"]
    latencies, bare = result["latencies"], result["bare"]
    print(
        f"webhook deliveries, one worker process ({args.deliveries} deliveries, concurrency "
        f"{result['concurrency']}, {args.database}, receiver on loopback)"
    )
    print(
        f"  throughput: {delivered_rate:8.0f} deliveries/s   baseline bare aiohttp POST loop: "
        f"{baseline_rate:8.0f} POST/s   ratio {delivered_rate / baseline_rate:.2f}"
    )
    print(
        f"  attempts recorded: {result['attempts']} for {args.deliveries} deliveries (1 each = no duplicates)"
    )
    print(
        f"  (reference: arq no-op jobs in one process: {result['noop_rate']:8.0f} jobs/s; "
        f"deliveries/s is {delivered_rate / result['noop_rate']:.2f} of that queue ceiling)"
    )
    print(
        f"  completion -> receipt ({len(latencies)} events at {args.rate:g}/s): "
        f"p50 {percentile(latencies, 50) * 1000:6.1f} ms   p99 {percentile(latencies, 99) * 1000:6.1f} ms"
    )
    print(
        f"  baseline bare POST round trip:              "
        f"p50 {percentile(bare, 50) * 1000:6.1f} ms   p99 {percentile(bare, 99) * 1000:6.1f} ms"
    )


async def store_events_paced(rt, count: int, rate: float) -> list:
    """Store and release events at `rate`/s: the path of a completing operation (event + deliveries
    in one transaction, then publish and queue)."""
    events = []
    for i in range(count):
        [event] = await store_events(rt, "bench", 1, 10_000_000 + i)
        await rt.generations.outbox.release(event)
        events.append(event)
        await asyncio.sleep(1 / rate)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--latency-events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    work = bench_workdir("lunos-bench-webhooks-")
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER_SOURCE, str(port)])
    try:
        with backing_servers(work, args.database) as (database_url, redis_url):
            result = asyncio.run(run(args, work, database_url, redis_url, f"http://127.0.0.1:{port}"))
    finally:
        stop(receiver)
    report(args, result)


if __name__ == "__main__":
    main()
