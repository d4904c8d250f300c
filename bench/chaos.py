"""Chaos on the production shape: `lunos-events stack` under load while its parts are killed.

    .venv/bin/python bench/chaos.py [--seconds 300] [--accounts 8] [--rate 1.0] [--api 2] [--workers 2]

tests/test_stack_chaos.py runs the same engine for a shorter time. The stack (private PostgreSQL,
Debian's redis-server with its append-only file, moto's S3, `serve` replicas behind Debian's nginx,
`worker` processes, the local simulator) takes load from the clients of bench/chaos_engine/clients.py and
webhook receivers of bench/chaos_engine/receivers.py, while faults are injected on a schedule:

- worker-kill: kill -9 of a worker (the stack starts it again);
- api-kill: kill -9 of an API replica (nginx routes around it; the stack starts it again);
- redis-restart: redis-server stopped and started on its data (append-only file);
- redis-wipe: redis-server killed and started empty (queue, limits and pub/sub state gone);
- postgres-restart: a fast shutdown of PostgreSQL and a start on the same data;
- receiver-down: the `ok` webhook receiver is away for a while.

After each fault a probe submits a generation through nginx (retrying 503s with its
Idempotency-Key) and polls it to its end: the fault's recovery time is from the fault to that end
(the simulator's own latency, about a second, included). The invariants of bench/chaos_engine/checks.py
are checked at the end, and a table is printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/http.py would shadow the
# standard library's `http`: the project root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import time
import uuid
from dataclasses import dataclass, field

import httpx
from sqlalchemy import text

from bench.chaos_engine.checks import Fault, Findings, check
from bench.chaos_engine.clients import FINAL, MODEL, Account, Load
from bench.chaos_engine.receivers import Receiver
from lunos_events.child_processes import free_port
from lunos_events.services.accounts import create_account, create_api_key
from lunos_events.stack.stack import ProductionStack, StackOptions
from lunos_events.store.transactions import Store

FAULT_KINDS = ("worker-kill", "api-kill", "redis-restart", "postgres-restart", "receiver-down", "redis-wipe")
START_BALANCE_CENTS = 1_000_000

# Short timers so that retries, relays and lock expiries happen within the run.
CHAOS_SETTINGS = {
    "LUNOS_PROVIDER": "local",
    "LUNOS_SIMULATOR_LATENCY_SECONDS": "1",
    "LUNOS_SIMULATOR_WIDTH": "64",
    "LUNOS_SIMULATOR_HEIGHT": "64",
    "LUNOS_SIMULATOR_FPS": "4",
    "LUNOS_SIMULATOR_VIDEO_SECONDS": "1",
    "LUNOS_POLL_INTERVAL_SECONDS": "0.5",
    "LUNOS_JOB_TIMEOUT_SECONDS": "10",
    "LUNOS_IDEMPOTENCY_CLAIM_LEASE_SECONDS": "10",
    "LUNOS_DATABASE_POOL_SIZE": "10",
    "LUNOS_SSE_HEARTBEAT_SECONDS": "2",
    "LUNOS_SSE_RETRY_MS": "500",
    "LUNOS_WEBHOOK_ALLOW_PRIVATE": "true",
    "LUNOS_WEBHOOK_TIMEOUT_SECONDS": "5",
    "LUNOS_WEBHOOK_RETRY_SCHEDULE": "500ms,1s,2s,3s,5s,5s,5s,5s,5s,5s,5s,5s,5s,5s",
}


@dataclass
class ChaosOptions:
    seconds: float = 90.0  # of load; faults start after `first_fault` and repeat every `fault_every`
    accounts: int = 6
    rate: float = 1.0  # submits per second per account
    api: int = 2
    workers: int = 2
    first_fault: float = 8.0
    fault_every: float = 8.0
    receiver_down_seconds: float = 5.0
    flaky_seconds: float = 20.0  # the flaky receiver fails this long from the start
    drain_seconds: float = 60.0
    kinds: tuple[str, ...] = FAULT_KINDS


@dataclass
class Report:
    findings: Findings
    faults: list[Fault]
    seconds: float
    statuses: dict[str, int] = field(default_factory=dict)
    subscribers: int = 0
    op_streams: int = 0

    def table(self) -> str:
        f = self.findings
        c = f.counts
        lines = [
            f"{'run':<28} {self.seconds:.0f} s: load with faults, then a drain",
            f"{'operations':<28} {c['operations']} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
            + f"; refunded {c['refunded']})",
            f"{'slowest operation':<28} {c['slowest_ms'] / 1000:.1f} s from submit to its end "
            f"(the simulator takes {CHAOS_SETTINGS['LUNOS_SIMULATOR_LATENCY_SECONDS']} s)",
            f"{'events':<28} {c['events']}",
            f"{'webhook deliveries':<28} {c['deliveries']} owed, {c['webhook_requests']} requests received",
            f"{'SSE subscribers':<28} {self.subscribers} account streams ({c['stream_reconnects']} resumes), "
            f"{self.op_streams} operation streams",
            f"{'HTTP answers':<28} {c['answers']} ({c['answers_503']} of them 503, "
            f"{c['answers_429']} 429, {c['no_answer']} cut or refused)",
            f"{'faults injected':<28} {len(self.faults)}",
        ]
        for kind in dict.fromkeys(fault.kind for fault in self.faults):
            times = [fault.recovery for fault in self.faults if fault.kind == kind]
            done = [t for t in times if t is not None]
            worst = f"max recovery {max(done):5.1f} s" if done else "no recovery"
            lines.append(
                f"  {kind:<26} x{len(times)}, {worst}" + ("" if len(done) == len(times) else " (some never)")
            )
        lines += [
            f"{'lost':<28} {len(f.lost)}",
            f"{'doubled':<28} {len(f.doubled)}",
            f"{'other problems':<28} {len(f.other)}",
        ]
        lines += [f"  ! {problem}" for problem in f.problems[:40]]
        return "\n".join(lines)


class Chaos:
    def __init__(self, options: ChaosOptions, workdir: Path) -> None:
        self.options = options
        stack_options = StackOptions(
            workdir / "stack", options.api, options.workers, free_port(), CHAOS_SETTINGS
        )
        self.stack = ProductionStack(stack_options)
        self.receivers = {kind: Receiver(kind) for kind in ("ok", "slow", "flaky", "gone")}
        self.endpoints: dict[str, Receiver] = {}
        self.faults: list[Fault] = []
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30, connect=3))
        self.probe: Account | None = None

    async def run(self) -> Report:
        await asyncio.to_thread(self.stack.start)
        store = Store.open(self.stack.postgres.url, pool_size=4)
        load: Load | None = None
        try:
            self.receivers["flaky"].recover_at = time.monotonic() + self.options.flaky_seconds
            for receiver in self.receivers.values():
                await receiver.start()
            accounts = [await self._account(store, f"chaos-{i + 1}") for i in range(self.options.accounts)]
            self.probe = await self._account(store, "chaos-probe")
            for account, kind in zip(accounts, itertools.cycle(self.receivers), strict=False):
                await self._register(account, self.receivers[kind])
            replicas = [self.stack.api_url(i) for i in range(self.options.api)]
            load = Load(self.stack.url, replicas, accounts, self.options.rate)
            load.records.start_balances = {a.id: a.start_balance_cents for a in accounts}
            started = time.monotonic()
            load.start()
            await self._faults(started)
            await asyncio.sleep(max(0.0, started + self.options.seconds - time.monotonic()))
            await load.stop_submitting()
            await self._drain(load)
            seconds = time.monotonic() - started
        finally:
            if load is not None:
                await load.close()
            await store.dispose()
        check_store = Store.open(self.stack.postgres.url, pool_size=2)
        try:
            findings = await check(
                check_store, load.records, list(self.receivers.values()), self.endpoints, self.faults
            )
            rows = await check_store.all(text("SELECT status, count(*) AS n FROM operations GROUP BY status"))
        finally:
            await check_store.dispose()
        return Report(
            findings,
            self.faults,
            seconds,
            {row.status: row.n for row in rows},
            len(load.records.subscribers),
            len(load.records.op_streams),
        )

    async def close(self) -> None:
        for receiver in self.receivers.values():
            await receiver.stop()
        await self.http.aclose()
        await asyncio.to_thread(self.stack.stop)

    async def _account(self, store: Store, account_id: str) -> Account:
        await create_account(store, account_id, START_BALANCE_CENTS, "pro")
        return Account(account_id, await create_api_key(store, account_id), START_BALANCE_CENTS)

    async def _register(self, account: Account, receiver: Receiver) -> None:
        response = await self.http.post(
            f"{self.stack.url}/v1/webhooks", json={"url": receiver.url}, headers=account.headers
        )
        response.raise_for_status()
        created = response.json()
        receiver.secrets.append(created["secret"])
        self.endpoints[created["id"]] = receiver

    async def _faults(self, started: float) -> None:
        kinds = itertools.cycle(self.options.kinds)
        at = started + self.options.first_fault
        end = started + self.options.seconds
        while at < end:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            fault = Fault(next(kinds), time.monotonic())
            self.faults.append(fault)
            await self._inject(fault)
            recovery = "never" if fault.recovery is None else f"{fault.recovery:.1f} s"
            print(
                f"t+{fault.at - started:5.1f} s  {fault.kind:<17} recovered: {recovery}",
                file=sys.stderr,
                flush=True,
            )
            at = max(at + self.options.fault_every, time.monotonic() + 2.0)

    async def _inject(self, fault: Fault) -> None:
        stack = self.stack
        number = len(self.faults)
        if fault.kind == "worker-kill":
            stack.kill(stack.worker_names[number % len(stack.worker_names)])
        elif fault.kind == "api-kill":
            stack.kill(stack.api_names[number % len(stack.api_names)])
        elif fault.kind in ("redis-restart", "redis-wipe"):
            await asyncio.to_thread(stack.restart_redis, fault.kind == "redis-restart")
        elif fault.kind == "postgres-restart":
            await asyncio.to_thread(stack.restart_postgres)
        elif fault.kind == "receiver-down":
            receiver = self.receivers["ok"]
            await receiver.stop()
            await asyncio.sleep(self.options.receiver_down_seconds)
            fault.back_at = time.monotonic()
            await receiver.start()
            fault.recovered_at = await self._first_delivery(receiver, fault.back_at)
            return
        fault.recovered_at = await self._probe()

    async def _first_delivery(self, receiver: Receiver, after: float, timeout: float = 60) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            arrived = [r.at for r in receiver.receipts if r.at >= after and r.status < 300]
            if arrived:
                return arrived[0]
            await asyncio.sleep(0.05)
        return None

    async def _probe(self, timeout: float = 60) -> float | None:
        """A generation submitted and followed to its end through nginx: when did it end?"""
        assert self.probe is not None
        headers = {**self.probe.headers, "Idempotency-Key": uuid.uuid4().hex}
        body = {"model": MODEL, "prompt": "probe"}
        deadline = time.monotonic() + timeout
        op_id = None
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if op_id is None:
                    response = await self.http.post(
                        f"{self.stack.url}/v1/video/generations", json=body, headers=headers
                    )
                    if response.status_code == 200:
                        op_id = response.json()["id"]
                else:
                    url = f"{self.stack.url}/v1/video/generations/{op_id}"
                    response = await self.http.get(url, headers=self.probe.headers)
                    if response.status_code == 200 and response.json()["status"] in FINAL:
                        return time.monotonic()
            await asyncio.sleep(0.1)
        return None

    async def _drain(self, load: Load) -> None:
        """Wait until every operation ended, every delivery settled and every stream caught up."""
        store = Store.open(self.stack.postgres.url, pool_size=2)
        deadline = time.monotonic() + self.options.drain_seconds
        waiting = "the database did not answer"
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):  # the database may still be coming back
                    unsettled = await store.scalar(
                        text(
                            "SELECT (SELECT count(*) FROM operations"
                            " WHERE status IN ('pending', 'processing')) + "
                            "(SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')"
                        )
                    )
                    rows = await store.all(text("SELECT id, event_seq FROM accounts"))
                    seqs = {row.id: row.event_seq for row in rows}
                    behind = [s for s in load.records.subscribers if s.last < seqs.get(s.account.id, 0)]
                    if unsettled == 0 and not behind:
                        return
                    waiting = (
                        f"{unsettled} operation(s) or deliveries unsettled, {len(behind)} stream(s) behind"
                    )
                await asyncio.sleep(0.5)
            print(
                f"drain: gave up after {self.options.drain_seconds:.0f} s: {waiting}",
                file=sys.stderr,
                flush=True,
            )
        finally:
            await store.dispose()


async def run_chaos(options: ChaosOptions, workdir: Path) -> Report:
    chaos = Chaos(options, workdir)
    watchdog = asyncio.create_task(_report_if_stuck(options.seconds + options.drain_seconds + 60))
    try:
        return await chaos.run()
    finally:
        watchdog.cancel()
        await chaos.close()


async def _report_if_stuck(after: float) -> None:
    """A run past its time prints where each of its tasks waits (for a CI log to show)."""
    await asyncio.sleep(after)
    print(f"chaos: still running after {after:.0f} s; its tasks:", file=sys.stderr, flush=True)
    for task in asyncio.all_tasks():
        where, awaited = [], task.get_coro()
        while awaited is not None and hasattr(awaited, "cr_frame") and awaited.cr_frame is not None:
            where.append(f"{Path(awaited.cr_frame.f_code.co_filename).name}:{awaited.cr_frame.f_lineno}")
            awaited = awaited.cr_await
        print(f"  {task.get_name()}: {' > '.join(where)} > {awaited!r:.120}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of load and faults")
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--rate", type=float, default=1.0, help="submits per second per account")
    parser.add_argument("--api", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fault-every", type=float, default=8.0)
    args = parser.parse_args()
    options = ChaosOptions(
        seconds=args.seconds,
        accounts=args.accounts,
        rate=args.rate,
        api=args.api,
        workers=args.workers,
        fault_every=args.fault_every,
    )
    workdir = Path(tempfile.mkdtemp(prefix="lunos-chaos-"))
    workdir.chmod(0o755)  # PostgreSQL's and nginx's unprivileged users must reach the stack's folders
    report = asyncio.run(run_chaos(options, workdir))
    print(report.table())
    sys.exit(1 if report.findings.problems else 0)


if __name__ == "__main__":
    main()
