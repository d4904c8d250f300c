"""How many in-flight operations one worker process tracks without falling behind its poll schedule.

    .venv/bin/python bench/worker.py                         # 5,000 operations, 5 s poll interval
    .venv/bin/python bench/worker.py --operations 10000 --interval 2

Each run starts a redis-server and SQLite in a temporary directory (or, with `--database
postgres`, a private PostgreSQL and Debian's redis-server) and ONE
`lunos-events worker` process, with N operations pending at a slow provider (the local simulator
with a latency of hours: every poll answers "still running"). The worker's start-up queues a
tracking job per operation; each job polls once and re-queues itself `--interval` seconds later.
After a warm-up, the queue is read through arq's public `queued_jobs()` more often than the interval:
a job's score (when it runs next) moves each time it has polled, so the moves per operation over
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

from bench.common import (
    DATABASES,
    backing_servers,
    bench_workdir,
    child_env,
    cpu_seconds,
    insert_operations,
    new_operations,
    percentile,
    start_lunos,
)
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.services.provider_jobs import provider_job
from lunos_events.settings import Settings, TierLimits

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
        ops = new_operations(rt, ACCOUNT, count, int(time.time() * 1000))
        rows = [{**op.row(), "provider_operation": await rt.provider.start(provider_job(op))} for op in ops]
        await insert_operations(rt, rows)
        return [op.id for op in ops]


async def polls_in_window(settings: Settings, op_ids: list[str], window: float) -> tuple[list[int], float]:
    """Polls per operation over `window` seconds, and the seconds the window really lasted.

    A tracking job's score is when it runs next; each poll moves it (Retry(defer=interval)). Read
    more often than the interval, no two polls of one operation fall between two reads (a job runs
    again no sooner than an interval after its last run ended).
    """
    period = 0.8 * settings.poll_interval_seconds
    async with open_runtime(settings) as rt:
        wanted, moves = set(op_ids), dict.fromkeys(op_ids, 0)
        scores: dict[str, int | None] = {}
        began = time.monotonic()
        while True:
            for job in await rt.bus.redis.queued_jobs(queue_name=settings.queue_name):
                op_id = job.args[0] if job.args else None
                if op_id in wanted:
                    if op_id in scores and scores[op_id] != job.score:
                        moves[op_id] += 1
                    scores[op_id] = job.score
            elapsed = time.monotonic() - began
            if elapsed >= window:
                return [moves[op] for op in op_ids], elapsed
            await asyncio.sleep(min(period, window - elapsed))


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
            cpu_first = cpu_seconds(worker.pid)
            polls, elapsed = asyncio.run(polls_in_window(settings, op_ids, window))
            cpu_last = cpu_seconds(worker.pid)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
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
