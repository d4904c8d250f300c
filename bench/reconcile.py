"""What the worker's reconcile costs at 15,000 active operations, now that it runs twice a minute.

    .venv/bin/python bench/reconcile.py --database postgres   # or sqlite (the default)

`--running` processing operations and `--queued` queued ones are written straight into the store
(PostgreSQL from Debian's packages and Debian's redis-server, or SQLite and the bundled Redis).
Three passes of `reconcile_operations`, each timed on the wall clock in this process (uvloop,
like the worker):

- rebuild: Redis holds none of their jobs (a wipe), so every tracking job and deadline watch is
  queued through arq and every count restored: what a full pass cost before, every 5 minutes;
- steady: every job is there, so the pass is the read of the active operations and the existence
  checks (one ZMSCORE of arq's queue per 1,000 jobs): what runs twice a minute now;
- lost: as steady, with 1% of the jobs gone (a Redis that lost its last writes).

Baseline, same run: one redis-py PING per active operation, one after the other (the round trip a
per-operation pass cannot do without). Ratios below 1 mean the pass costs less than that.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import time
from typing import Any

import uvloop

from bench.common import (
    DATABASES,
    backing_servers,
    bench_settings,
    bench_workdir,
    forget_jobs,
    insert_operations,
    new_operations,
)
from lunos_events.bus.jobs import tracking_job_id
from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.services import accounts
from lunos_events.settings import Settings
from lunos_events.worker.app import reconcile_operations


async def seed(rt: Runtime, running: int, queued: int) -> list[str]:
    """The operations, over 10 accounts; returns the running ones' ids."""
    stamp, now, ids = int(time.time() * 1000) - 10**8, now_ms(), []
    for account in range(10):
        await accounts.create_account(rt.store, f"acct-{account}", 10**12, "pro")
        ops = new_operations(rt, f"acct-{account}", (running + queued) // 10, stamp + account * 10**6)
        split = running // 10
        started = [
            {**op.row(), "status": "processing", "provider_operation": f"op-{op.id}"}
            | {"provider_credential": "default", "started_at_ms": now}
            for op in ops[:split]
        ]
        waiting = [{**op.row(), "queued_at_ms": now} for op in ops[split:]]
        await insert_operations(rt, started + waiting)
        ids += [row["id"] for row in started]
    return ids


async def timed(pass_: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await pass_
    return time.perf_counter() - began, result


async def measure(settings: Settings, running: int, queued: int) -> dict[str, float]:
    async with open_runtime(settings) as rt:
        running_ids = await seed(rt, running, queued)
        ctx = {"rt": rt}
        redis = rt.bus.redis
        figures = {}

        async def pings() -> None:
            for _ in range(running + queued):
                await redis.ping()

        figures["baseline"], _ = await timed(pings())
        figures["rebuild"], enqueued = await timed(reconcile_operations(ctx))
        assert enqueued == running + queued, enqueued
        figures["steady"], enqueued = await timed(reconcile_operations(ctx))
        assert enqueued == 0, enqueued
        lost = running_ids[:: max(1, len(running_ids) // max(1, (running + queued) // 100))]
        await forget_jobs(redis, settings.queue_name, [tracking_job_id(op_id) for op_id in lost])
        figures["lost"], enqueued = await timed(reconcile_operations(ctx))
        assert enqueued == len(lost), (enqueued, len(lost))
        figures["lost_count"] = len(lost)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--running", type=int, default=5000)
    parser.add_argument("--queued", type=int, default=10000)
    args = parser.parse_args()
    workdir = bench_workdir("lunos-bench-reconcile-")
    with backing_servers(workdir, args.database) as (database_url, redis_url):
        settings = bench_settings(workdir, database_url, redis_url)
        figures = uvloop.run(measure(settings, args.running, args.queued))
    total = args.running + args.queued
    baseline = figures["baseline"]
    print(f"reconcile, {args.database}: {args.running} processing + {args.queued} queued operations")
    print(f"  baseline: {total} PINGs one by one  {baseline * 1000:8.0f} ms")
    for name, label in (
        ("rebuild", "rebuild (every job missing)"),
        ("steady", "steady (nothing missing)"),
        ("lost", f"lost ({figures['lost_count']:.0f} jobs missing)"),
    ):
        print(f"  {label:<34}{figures[name] * 1000:8.0f} ms  {figures[name] / baseline:5.2f}x baseline")


if __name__ == "__main__":
    main()
