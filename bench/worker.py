"""How many in-flight operations one worker process tracks without falling behind its poll schedule.

    .venv/bin/python bench/worker.py                         # 5,000 operations, 5 s poll interval
    .venv/bin/python bench/worker.py --operations 10000 --interval 2

Each run starts a redis-server and SQLite in a temporary directory (or, with `--database
postgres`, a private PostgreSQL and Debian's redis-server) and ONE
`lunos-events worker` process, with N operations pending at a slow provider (the local simulator
with a latency of hours: every poll answers "still running"). The worker's start-up queues a
tracking job per operation; each job polls once and re-queues itself `--interval` seconds later.
After a warm-up, the arq try counter of every tracking job is read twice; polls per operation over
that window give the interval each operation was really polled at. "On schedule" means the p99
interval stays within 1.5x the configured one.

Baseline, same run: the same measurement with 100 operations (an idle worker's own overhead per
poll: job pick-up, one row read, one provider call, the re-queue).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/http.py would shadow the
# standard library's `http`: the project root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import secrets
import time
from dataclasses import dataclass

from arq.constants import retry_key_prefix
from sqlalchemy import update

from bench.common import (
    DATABASES,
    backing_servers,
    bench_workdir,
    child_env,
    cpu_seconds,
    percentile,
    start_lunos,
)
from lunos_events.bus.jobs import tracking_job_id
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.services.accounts import Principal
from lunos_events.services.generation_request import parse_generation_request
from lunos_events.services.generations import new_operation
from lunos_events.services.provider_jobs import provider_job
from lunos_events.settings import Settings, TierLimits
from lunos_events.store.models import Operation

ACCOUNT = "bench"
SLOW_PROVIDER_SECONDS = 6 * 3600.0


@dataclass
class Schedule:
    operations: int
    intervals: list[float]  # seconds between two polls, per operation, over the window
    polls_per_second: float
    worker_cpu: float  # fraction of one core

    def line(self, configured: float) -> str:
        p50, p99 = percentile(self.intervals, 0.5), percentile(self.intervals, 0.99)
        return (
            f"  {self.operations:6d} operations: {self.polls_per_second:7.0f} polls/s, interval "
            f"p50 {p50:5.2f} s  p99 {p99:5.2f} s  ({p99 / configured:4.2f}x configured), "
            f"worker CPU {self.worker_cpu * 100:3.0f}%"
        )


async def pending_operations(settings: Settings, count: int) -> list[str]:
    """`count` operations already started at the (slow) provider, as a submit leaves them."""
    async with open_runtime(settings) as rt:
        await accounts.create_account(rt.store, ACCOUNT, 10**12, "bench")
        principal = Principal(ACCOUNT, "bench")
        request = parse_generation_request(
            {"model": "google/veo-3.0-generate-preview", "prompt": "a slow one"},
            rt.catalog,
            max_prompt_chars=settings.max_prompt_chars,
            header_app_id=None,
        )
        stamp = int(time.time() * 1000)
        rows = []
        for index in range(count):
            op = new_operation(principal, request, stamp + index, settings.operation_deadline_seconds)
            rows.append({**op.row(), "provider_operation": await rt.provider.start(provider_job(op))})
        async with rt.store.transaction() as conn:
            await conn.execute(Operation.__table__.insert(), rows)
            await conn.execute(update(Operation).values(deadline_at_ms=stamp + 10**10))
        return [row["id"] for row in rows]


async def tries(settings: Settings, op_ids: list[str]) -> list[int]:
    async with open_runtime(settings) as rt:
        counts: list[int] = []
        for start in range(0, len(op_ids), 1000):
            keys = [retry_key_prefix + tracking_job_id(op) for op in op_ids[start : start + 1000]]
            counts.extend(int(value or 0) for value in await rt.bus.redis.mget(keys))
        return counts


def measure(database: str, count: int, interval: float, warmup: float, window: float) -> Schedule:
    workdir = bench_workdir("lunos-bench-worker-")
    with backing_servers(workdir, database) as (database_url, redis_url):
        settings = Settings(
            data_dir=workdir / "data",
            database_url=database_url,
            redis_url=redis_url,
            stream_token_secret=secrets.token_hex(32),
            poll_interval_seconds=interval,
            simulator_latency_seconds=SLOW_PROVIDER_SECONDS,
            operation_deadline_seconds=10**7,
            worker_max_jobs=max(200, count // 10),
            tiers={"bench": TierLimits(submits_per_minute=10**9, max_in_flight=10**9)},
        )
        op_ids = asyncio.run(pending_operations(settings, count))
        worker = start_lunos("worker", child_env(settings.as_env()))
        try:
            time.sleep(warmup)
            first, cpu_first, started = (
                asyncio.run(tries(settings, op_ids)),
                cpu_seconds(worker.pid),
                time.time(),
            )
            time.sleep(window)
            last, cpu_last, ended = asyncio.run(tries(settings, op_ids)), cpu_seconds(worker.pid), time.time()
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    elapsed = ended - started
    polls = [b - a for a, b in zip(first, last, strict=True)]
    # An operation not polled at all in the window counts as polled at the window's length.
    intervals = [elapsed / n if n else elapsed for n in polls]
    return Schedule(count, intervals, sum(polls) / elapsed, (cpu_last - cpu_first) / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument(
        "--interval", type=float, default=5.0, help="poll interval (LUNOS_POLL_INTERVAL_SECONDS)"
    )
    parser.add_argument("--windows", type=float, default=4.0, help="measurement window, in intervals")
    args = parser.parse_args()
    warmup, window = 2 * args.interval + 5, args.windows * args.interval

    print(f"One worker process, {args.database}, poll interval {args.interval:.1f} s, window {window:.0f} s")
    baseline = measure(args.database, 100, args.interval, warmup, window)
    print(baseline.line(args.interval) + "   (baseline)")
    loaded = measure(args.database, args.operations, args.interval, warmup, window)
    print(loaded.line(args.interval))
    ratio = percentile(loaded.intervals, 0.99) / percentile(baseline.intervals, 0.99)
    on_schedule = percentile(loaded.intervals, 0.99) <= 1.5 * args.interval
    verdict = "ok" if on_schedule else "MISSED"
    print(f"  p99 interval vs baseline: {ratio:4.2f}x; on schedule (p99 <= 1.5x): {verdict}")


if __name__ == "__main__":
    main()
