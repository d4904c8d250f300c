"""Every script in bench/ still runs end to end (tiny sizes; the figures themselves are not checked).

The benches are run by hand, so without this a change to the code they drive breaks them silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WORKER_QUEUE_SMALL = ["--in-flight", "40", "--queued", "60", "--rate", "10", "--seconds", "3"]
WORKER_QUEUE_SMALL += ["--interval", "0.5", "--busy-every", "1"]
SMALL_RUNS = {
    "http.py": (["--seconds", "0.3", "--rounds", "2", "--connections", "2", "--accounts", "3"], "x bare"),
    "submit_parts.py": (["--calls", "20"], "x baseline"),
    "worker.py": (["--operations", "150", "--interval", "0.5", "--windows", "2"], "p99 interval vs baseline"),
    "webhooks.py": (["--deliveries", "40", "--latency-events", "10", "--rate", "20"], "deliveries/s"),
    "sse_fanout.py": (["--subscribers", "40", "--client-processes", "1", "--heartbeat", "1"], "baseline"),
    "r2_upload.py": (["4"], "baseline"),
    "stack.py": (
        ["--seconds", "0.3", "--rounds", "1", "--connections", "2", "--accounts", "2", "--subscribers", "20"],
        "nginx -> 2 API / 1 API direct",
    ),
    "capacity_queue.py": (["--operations", "30", "--slots", "5", "--latency", "0.3"], "dispatch latency"),
    "worker_queue.py": (WORKER_QUEUE_SMALL, "vs baseline"),
    "reconcile.py": (["--running", "100", "--queued", "200"], "x baseline"),
}

# Scripts whose engine a test runs at its own size.
COVERED_ELSEWHERE = {"chaos.py": "tests/test_stack_chaos.py"}


# The production shape's benches start a private PostgreSQL from Debian's packages.
POSTGRES_RUNS = {
    "http.py": ["--seconds", "0.3", "--rounds", "1", "--connections", "2", "--accounts", "2"],
    "submit_parts.py": ["--calls", "10"],
    "worker_queue.py": WORKER_QUEUE_SMALL,
    "reconcile.py": ["--running", "100", "--queued", "200"],
}


def test_every_bench_script_is_covered() -> None:
    scripts = {path.name for path in (ROOT / "bench").glob("*.py")} - {"__init__.py", "common.py"}
    assert scripts == set(SMALL_RUNS) | set(COVERED_ELSEWHERE)


@pytest.mark.parametrize("script", sorted(SMALL_RUNS))
def test_bench_script_runs(script: str) -> None:
    arguments, expected = SMALL_RUNS[script]
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert expected in done.stdout, done.stdout


@pytest.mark.parametrize("script", sorted(POSTGRES_RUNS))
def test_bench_script_runs_on_postgres(script: str) -> None:
    missing = [p for p in ("/usr/lib/postgresql", "/usr/bin/redis-server") if not Path(p).exists()]
    if missing:
        # Locally a missing Debian package skips; in CI, where .ci/run installs them, it fails.
        if os.environ.get("LUNOS_CI"):
            pytest.fail(f"missing: {missing}")
        pytest.skip(f"missing: {missing}")
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--database", "postgres", *POSTGRES_RUNS[script]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "postgres" in done.stdout, done.stdout
