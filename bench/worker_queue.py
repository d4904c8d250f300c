"""One worker's dispatch under a deep capacity queue: 10,000 queued + 5,000 in flight.

    .venv/bin/python bench/worker_queue.py                        # SQLite, the full size
    .venv/bin/python bench/worker_queue.py --database postgres
    .venv/bin/python bench/worker_queue.py --quick                # 500 in flight, 1,000 queued

ONE `lunos-events worker` process (the real CLI) with Redis and SQLite (or, with `--database
postgres`, a private PostgreSQL and Debian's redis-server), and Google Veo through google-genai
against tests/fake_google.py, which enforces a concurrency quota per API key. The fake, not the
local simulator, because only the Veo path has what the dispatch depends on: a real start
request per claim (google-genai + HTTP, the cost a start has in production), per-key quotas
Google itself would enforce (a start past them is a 429), and the 429 -> requeue -> cool-down path
(the fake answers one start in `--busy-every` seconds with a 429). The fake runs in this process,
in its own thread; every finished operation returns the same small MP4, which the worker stores
with its poster as it would any video.

`--in-flight` operations are started (through the fake) on `--credentials` API keys, each capped
at its share, and `--queued` more wait in the queue behind them, spread over `--accounts`
accounts with `--apps` apps each (the first account holds half the queue, so the fair order
decides who goes next). The worker's start-up reconcile queues a tracking job for every one and
restores the credentials' in-flight counts. After a warm-up the fake finishes its operations at
`--rate` per second, in start order (at 5,000 in flight, 50/s is Veo's typical run of about
100 s): the worker sees each at its next poll, records the completion, frees the slot, and its
dispatcher starts the next queued operation. The bench keeps the queue at its depth by adding
operations as they leave it, as submits would.

Measured from the database rows alone (no timing code in the service): on each credential, the
k-th start of a queued operation took the slot the k-th completion freed, so its dispatch latency
is `started_at_ms` minus that completion's `completed_at_ms` (or minus its `queued_at_ms`, when
it was queued after the slot freed); starts/s is queued operations started per second of the
window.

Baseline, same run: the same worker, operations, quotas and completion rate with a short queue
(about two seconds of starts, `--baseline-queued`), so what differs is only the backlog the
dispatcher and the worker carry.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import functools
import secrets
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from bench.common import (
    BENCH_MODEL,
    DATABASES,
    backing_servers,
    bench_workdir,
    child_env,
    cpu_seconds,
    fmt_ms,
    insert_operations,
    new_operations,
    percentile,
    start_lunos,
)
from lunos_events.ids import now_ms
from lunos_events.providers.render import render_video
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.services import accounts
from lunos_events.services.fair_queue import QUEUED
from lunos_events.services.provider_jobs import provider_job
from lunos_events.settings import ProviderCredential, Settings, TierLimits
from lunos_events.store.models import Operation
from tests.fake_google import FakeGoogle, FakeGoogleServer, KeyQuota

TIER = "bench"
STARTS_AT_ONCE = 50  # concurrent provider starts while the in-flight operations are seeded


@functools.cache
def _one_video() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        render_video(path, "bench", width=160, height=96, fps=8, seconds=1)
        return path.read_bytes()


class OneVideoFake(FakeGoogle):
    """The fake, rendering its MP4 once: what the bench measures is the worker, not FFmpeg here."""

    def video_for(self, prompt: str) -> bytes:
        return _one_video()


@dataclass
class Size:
    in_flight: int
    queued: int
    credentials: int
    accounts: int
    apps: int
    rate: float  # completions per second
    seconds: float  # measurement window
    interval: float  # poll interval
    busy_every: float  # one 429 from the fake per this many seconds (0: none)


@dataclass
class Figures:
    label: str
    latencies: list[float]  # seconds, per queued start
    starts_per_second: float
    completions_per_second: float
    unstarted: int  # completions in the window whose slot no start had taken by the end
    refused: int  # 429s the fake answered (each start requeued)
    by_account: Counter[str]
    worker_cpu: float  # fraction of one core

    def line(self) -> str:
        p50, p99 = percentile(self.latencies, 0.5), percentile(self.latencies, 0.99)
        return (
            f"  {self.label:<22} dispatch p50 {fmt_ms(p50)}  p99 {fmt_ms(p99)}  "
            f"{self.starts_per_second:6.1f} starts/s  ({self.completions_per_second:5.1f} completions/s, "
            f"{self.unstarted} slots unused at the end, {self.refused} x 429, "
            f"worker CPU {self.worker_cpu * 100:3.0f}%)"
        )


def run_settings(
    workdir: Path, size: Size, fake_url: str, database_url: str | None, redis_url: str
) -> Settings:
    cap = size.in_flight // size.credentials
    credentials = [
        ProviderCredential(name=f"cred-{i}", api_key=f"key-{i}", max_in_flight=cap)
        for i in range(size.credentials)
    ]
    return Settings(
        data_dir=workdir / "data",
        database_url=database_url,
        redis_url=redis_url,
        stream_token_secret=secrets.token_hex(32),
        provider="google",
        google_base_url=fake_url,
        google_credentials=credentials,
        google_start_attempts=1,
        # Short: a 429 here is one injected refusal, not a quota the cool-down should wait out.
        capacity_cooldown_seconds=0.5,
        poll_interval_seconds=size.interval,
        worker_max_jobs=200,
        tiers={TIER: TierLimits(submits_per_minute=10**9, max_in_flight=10**9)},
    )


class Feeder:
    """Writes queued operations, as submits that found no room leave them, spread over the accounts
    and apps (half of them on the first account); ids count up from `stamp_ms`."""

    def __init__(self, rt: Runtime, size: Size, stamp_ms: int) -> None:
        self._rt = rt
        self._size = size
        self._stamp = stamp_ms
        self._turn = 0

    def _owner(self) -> tuple[str, str]:
        self._turn += 1
        others = self._size.accounts - 1
        account = 0 if self._turn % 2 or not others else 1 + (self._turn // 2) % others
        return f"acct-{account}", f"app-{self._turn % self._size.apps}"

    async def add(self, count: int, *, enqueue_tracking: bool) -> None:
        rows = []
        queued_at = now_ms()
        for _ in range(count):
            account, app = self._owner()
            self._stamp += 1
            (op,) = new_operations(self._rt, account, 1, self._stamp, app)
            rows.append({**op.row(), "queued_at_ms": queued_at})
        await insert_operations(self._rt, rows)
        await self._rt.generations.starter.capacity.queued(BENCH_MODEL)
        if enqueue_tracking:  # as a submit does; before the worker starts, its reconcile does it
            for row in rows:
                await self._rt.bus.enqueue_tracking(row["id"])

    async def top_up(self, depth: int) -> None:
        waiting = await self._rt.store.scalar(select(func.count()).select_from(Operation).where(*QUEUED))
        if (missing := depth - int(waiting or 0)) > 0:
            await self.add(missing, enqueue_tracking=True)


async def seed(rt: Runtime, size: Size, queued: int) -> None:
    """The in-flight operations, started at the fake round-robin over the credentials, and the queue."""
    for account in range(size.accounts):
        await accounts.create_account(rt.store, f"acct-{account}", 10**12, TIER)
    stamp = int(time.time() * 1000)
    ops = new_operations(rt, "acct-0", size.in_flight, stamp - 10**7, "app-0")
    started_at = now_ms()
    rows: list[dict[str, Any]] = []
    for first in range(0, len(ops), STARTS_AT_ONCE):
        batch = ops[first : first + STARTS_AT_ONCE]
        credentials = [f"cred-{(first + i) % size.credentials}" for i in range(len(batch))]
        jobs = [provider_job(op, credential=c) for op, c in zip(batch, credentials, strict=True)]
        names = await asyncio.gather(*(rt.provider.start(job) for job in jobs))
        rows += [
            {**op.row(), "provider_operation": name, "provider_credential": c, "started_at_ms": started_at}
            for op, c, name in zip(batch, credentials, names, strict=True)
        ]
    await insert_operations(rt, rows)
    await Feeder(rt, size, stamp).add(queued, enqueue_tracking=False)


async def warm_up(rt: Runtime, size: Size, queued: int) -> None:
    while await rt.bus.queue_depth() < size.in_flight + queued:  # the worker's reconcile is not done
        await asyncio.sleep(0.5)
    await asyncio.sleep(2 * size.interval)  # the first polls, spread over an interval


async def window(
    rt: Runtime, size: Size, fake: FakeGoogle, feeder: Feeder, queued: int
) -> tuple[int, int, int]:
    """Let completions flow for the window, keeping the queue at its depth: (start ms, end ms, 429s
    injected)."""
    began = now_ms()
    fake.completions_from = time.monotonic()
    injected, next_busy = 0, time.monotonic() + size.busy_every
    while (now := now_ms()) < began + size.seconds * 1000:
        if size.busy_every and time.monotonic() >= next_busy:
            fake.start_errors.append(429)
            injected, next_busy = injected + 1, next_busy + size.busy_every
        await feeder.top_up(queued)
        await asyncio.sleep(0.25)
    return began, now, injected - len(fake.start_errors)


async def from_rows(rt: Runtime, began: int, ended: int) -> tuple[list[float], Counter[str], int, int]:
    """Dispatch latencies, queued starts by account, completions and unused slots of the window."""
    rows = await rt.store.all(
        select(
            col(Operation.account_id),
            col(Operation.provider_credential),
            col(Operation.queued_at_ms),
            col(Operation.started_at_ms),
            col(Operation.completed_at_ms),
        ).where(col(Operation.provider_credential).is_not(None))
    )
    frees: dict[str, list[int]] = {}
    starts: dict[str, list[tuple[int, int]]] = {}
    by_account: Counter[str] = Counter()
    for account, credential, queued_at, started_at, completed_at in rows:
        if completed_at is not None and began <= completed_at:
            frees.setdefault(credential, []).append(completed_at)
        if queued_at is not None and started_at is not None and started_at >= began:
            starts.setdefault(credential, []).append((started_at, queued_at))
            if started_at < ended:
                by_account[account] += 1
    latencies: list[float] = []
    completions = unused = 0
    for credential, freed in frees.items():
        taken = sorted(starts.get(credential, []))
        for k, free_at in enumerate(sorted(freed)):
            if free_at >= ended:
                break
            completions += 1
            if k < len(taken):
                started_at, queued_at = taken[k]
                latencies.append((started_at - max(free_at, queued_at)) / 1000)
            else:
                unused += 1
                latencies.append((ended - free_at) / 1000)  # at least this long
    return latencies, by_account, completions, unused


def measure(database: str, size: Size, label: str, queued: int) -> Figures:
    workdir = bench_workdir("lunos-bench-worker-queue-")
    fake = OneVideoFake(completions_per_second=size.rate)
    cap = size.in_flight // size.credentials
    fake.keys = {f"key-{i}": KeyQuota(max_running=cap) for i in range(size.credentials)}
    with FakeGoogleServer(fake) as server, backing_servers(workdir, database) as (database_url, redis_url):
        settings = run_settings(workdir, size, server.url, database_url, redis_url)

        async def prepare() -> None:
            async with open_runtime(settings) as rt:
                await seed(rt, size, queued)

        async def run(worker_pid: int) -> Figures:
            async with open_runtime(settings) as rt:
                await warm_up(rt, size, queued)
                cpu_first = cpu_seconds(worker_pid)
                feeder = Feeder(rt, size, int(time.time() * 1000) + 10**7)
                began, ended, injected = await window(rt, size, fake, feeder, queued)
                cpu = cpu_seconds(worker_pid) - cpu_first
                await asyncio.sleep(min(5.0, size.interval))  # the starts of the window's last frees
                latencies, by_account, completions, unused = await from_rows(rt, began, ended)
            seconds = (ended - began) / 1000
            refused = injected + sum(q.refused for q in fake.keys.values())
            return Figures(
                label,
                latencies,
                sum(by_account.values()) / seconds,
                completions / seconds,
                unused,
                refused,
                by_account,
                cpu / seconds,
            )

        asyncio.run(prepare())
        worker = start_lunos("worker", child_env(settings.as_env()))
        try:
            return asyncio.run(run(worker.pid))
        finally:
            worker.terminate()
            worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--in-flight", type=int, default=5000)
    parser.add_argument("--queued", type=int, default=10000)
    parser.add_argument("--credentials", type=int, default=4, help="API keys, each capped at its share")
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--apps", type=int, default=3, help="apps per account")
    parser.add_argument("--rate", type=float, default=50.0, help="completions per second at the fake")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="poll interval (LUNOS_POLL_INTERVAL_SECONDS)"
    )
    parser.add_argument("--busy-every", type=float, default=10.0, help="one 429 per this many seconds")
    parser.add_argument("--baseline-queued", type=int, default=None, help="default: 2 s of starts")
    parser.add_argument("--quick", action="store_true", help="500 in flight, 1,000 queued, 20 s")
    args = parser.parse_args()
    if args.quick:  # smaller defaults; sizes given on the command line still win
        parser.set_defaults(in_flight=500, queued=1000, rate=20.0, seconds=20.0)
        args = parser.parse_args()
    size = Size(
        args.in_flight,
        args.queued,
        args.credentials,
        args.accounts,
        args.apps,
        args.rate,
        args.seconds,
        args.interval,
        args.busy_every,
    )
    short = args.baseline_queued or max(10, round(2 * args.rate))
    print(
        f"One worker process, {args.database}: {size.in_flight} in flight on {size.credentials} capped "
        f"credentials, completing at {size.rate:.0f}/s; poll interval {size.interval:.1f} s, "
        f"window {size.seconds:.0f} s"
    )
    baseline = measure(args.database, size, f"{short} queued (baseline)", short)
    print(baseline.line())
    loaded = measure(args.database, size, f"{size.queued} queued", size.queued)
    print(loaded.line())
    ratio = {
        q: percentile(loaded.latencies, q) / max(percentile(baseline.latencies, q), 1e-3) for q in (0.5, 0.99)
    }
    rate = loaded.starts_per_second / max(baseline.starts_per_second, 1e-9)
    print(f"  vs baseline: dispatch p50 {ratio[0.5]:4.2f}x, p99 {ratio[0.99]:4.2f}x, starts/s {rate:4.2f}x")
    total = sum(loaded.by_account.values()) or 1
    shares = ", ".join(f"{a} {n / total:4.0%}" for a, n in sorted(loaded.by_account.items()))
    print(f"  queued starts by account ({size.queued} queued, half of them acct-0's): {shares}")


if __name__ == "__main__":
    main()
