"""Every script in bench/ still runs end to end (tiny sizes; the figures themselves are not checked).

The benches are run by hand, so without this a change to the code they drive breaks them silently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMALL_RUNS = {
    "http.py": (["--seconds", "0.3", "--rounds", "2", "--connections", "2"], "x bare"),
    "worker.py": (["--operations", "150", "--interval", "0.5", "--windows", "2"], "p99 interval vs baseline"),
    "webhooks.py": (["--deliveries", "40", "--latency-events", "10", "--rate", "20"], "deliveries/s"),
    "sse_fanout.py": (["--subscribers", "40", "--client-processes", "1", "--heartbeat", "1"], "baseline"),
    "r2_upload.py": (["4"], "baseline"),
}


def test_every_bench_script_is_covered() -> None:
    assert {path.name for path in (ROOT / "bench").glob("*.py")} - {"__init__.py", "common.py"} == set(
        SMALL_RUNS
    )


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
