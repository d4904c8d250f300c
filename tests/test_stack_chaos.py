"""The production shape under load and faults: nothing lost, nothing doubled.

`lunos-events stack` (a private PostgreSQL, Debian's redis-server, moto's S3, two `serve` replicas
behind Debian's nginx, two workers) takes submits with Idempotency-Key retries, polls, SSE streams
on every replica and webhook deliveries (slow, failing then recovering, 410), while a worker and an
API replica are killed with SIGKILL, Redis restarts with and without its data, PostgreSQL restarts
and a receiver goes away. bench/chaos.py is the engine (and runs it for longer); the invariants are
in bench/chaos_engine/checks.py. Bounded: 100 s of load and faults, about two minutes in all.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.chaos import FAULT_KINDS, ChaosOptions, run_chaos
from tests.processes import stack_workdir


@pytest.mark.timeout(300)
def test_the_stack_loses_and_doubles_nothing_under_faults() -> None:
    workdir = stack_workdir("lunos-chaos-")

    # Every fault kind twice, 8 s apart, under load from 5 accounts, then a drain.
    report = asyncio.run(run_chaos(ChaosOptions(seconds=100, accounts=5, rate=0.8), workdir))
    print(report.table())

    assert report.findings.problems == [], report.table()
    assert [fault.kind for fault in report.faults] == list(FAULT_KINDS) * 2
    assert all(fault.recovery is not None for fault in report.faults), report.table()
    counts = report.findings.counts
    assert counts["operations"] > 100 and counts["deliveries"] > 50, report.table()
    assert (
        report.statuses.get("completed")
        and report.statuses.get("failed")
        and report.statuses.get("cancelled")
    )
    assert counts["refunded"] > 0 and counts["stream_reconnects"] > 0
