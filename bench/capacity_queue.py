"""How fast queued operations start when provider slots free (the capacity queue's dispatch).

    .venv/bin/python bench/capacity_queue.py                      # 400 submits, 20 slots
    .venv/bin/python bench/capacity_queue.py --operations 2000 --slots 50

One process runs the API and a worker (in-process, as `lunos-events dev` does) on SQLite and a
redis-server in a temporary directory, with the local simulator behind ONE credential capped at
`--slots` operations in flight. Everything is submitted at once: the first `--slots` start at the
submit, the rest wait in the queue and are started by the dispatcher as operations complete.

- dispatch latency: for each queued operation, its start minus the latest completion before it
  (the slot it took freed then);
- starts/s: queued operations started per second of the run, against the same run without a cap
  (every start at the submit, no queue).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import bisect
import secrets
import time

import httpx
from sqlalchemy import select
from sqlmodel import col

from bench.common import backing_servers, bench_workdir, fmt_ms, free_port, percentile
from lunos_events.money import parse_amount
from lunos_events.runtime import Runtime
from lunos_events.services import accounts
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.store.models import ACTIVE_STATUSES, Operation

BODY = {"model": "google/veo-3.1-generate-001", "prompt": "bench", "parameters": {"durationSeconds": 4}}


async def _run(
    workdir: Path, redis_url: str, operations: int, slots: int | None, latency: float
) -> dict[str, float]:
    settings = Settings(
        data_dir=workdir / f"data-{slots}",
        port=free_port(),
        redis_url=redis_url,
        provider="local",
        queue_name=f"bench:{slots}:queue",
        events_channel=f"bench:{slots}:events",
        redis_key_prefix=f"bench:{slots}",
        simulator_latency_seconds=latency,
        simulator_width=64,
        simulator_height=36,
        simulator_video_seconds=0.5,
        poll_interval_seconds=0.1,
        google_max_in_flight=slots,
        worker_max_jobs=200,
        stream_token_secret=secrets.token_hex(32),
    )
    async with running_service(settings) as rt:
        await accounts.create_account(rt.store, "bench", parse_amount("100000.00"), "dev")
        key = await accounts.create_api_key(rt.store, "bench")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=60) as client:
            began = time.monotonic()
            for _ in range(operations):
                response = await client.post("/v1/video/generations", headers=headers, json=BODY)
                response.raise_for_status()
            await _until_done(rt)
            elapsed = time.monotonic() - began
        return await _figures(rt, elapsed)


async def _until_done(rt: Runtime) -> None:
    while True:
        done = await rt.store.scalar(
            select(col(Operation.id)).where(col(Operation.status).in_(ACTIVE_STATUSES)).limit(1)
        )
        if done is None:
            return
        await asyncio.sleep(0.2)


async def _figures(rt: Runtime, elapsed: float) -> dict[str, float]:
    rows = await rt.store.all(
        select(col(Operation.queued_at_ms), col(Operation.started_at_ms), col(Operation.completed_at_ms))
    )
    ends = sorted(r.completed_at_ms for r in rows if r.completed_at_ms)
    latencies = []
    for queued, started, _ in rows:
        if queued is None or started is None:
            continue
        i = bisect.bisect_right(ends, started) - 1
        if i >= 0:
            latencies.append((started - max(ends[i], queued)) / 1000)
    queued_starts = sorted(r.started_at_ms for r in rows if r.queued_at_ms is not None and r.started_at_ms)
    span = (queued_starts[-1] - queued_starts[0]) / 1000 if len(queued_starts) > 1 else 0.0
    return {
        "queued": len(queued_starts),
        "p50": percentile(latencies, 0.5) if latencies else 0.0,
        "p99": percentile(latencies, 0.99) if latencies else 0.0,
        "queued_starts_per_s": len(queued_starts) / span if span else 0.0,
        "ops_per_s": len(rows) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=400)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.5, help="simulated provider run time (s)")
    args = parser.parse_args()
    workdir = bench_workdir("lunos-bench-capacity-")
    with backing_servers(workdir, "sqlite") as (_, redis_url):
        queued = asyncio.run(_run(workdir, redis_url, args.operations, args.slots, args.latency))
        unlimited = asyncio.run(_run(workdir, redis_url, args.operations, None, args.latency))
    print(f"{args.operations} submits, {args.slots} slots, provider run {args.latency}s")
    p50, p99 = fmt_ms(queued["p50"]), fmt_ms(queued["p99"])
    print(f"  queued {queued['queued']:.0f}: dispatch latency (slot free -> start) p50 {p50} p99 {p99}")
    rate, overall = queued["queued_starts_per_s"], queued["ops_per_s"]
    print(f"  {rate:.1f} queued starts/s, {overall:.1f} operations/s overall")
    print(f"  no cap: {unlimited['ops_per_s']:.1f} operations/s overall (every start at the submit)")


if __name__ == "__main__":
    main()
