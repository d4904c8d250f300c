"""Running `lunos-events` commands as real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lunos_events.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process see the same Settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")}
    env.update(settings.as_env())
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lunos_events", *args]


def spawn(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args),
        env=env,
        cwd=cwd or PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), env=env, capture_output=True, text=True, timeout=60)


def wait_for_exit(process: subprocess.Popen[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("process did not exit in time")
        time.sleep(0.05)
    return process.returncode


def stack_workdir(prefix: str) -> Path:
    """A folder for servers from Debian's packages (the stack's), which their own unprivileged users
    can reach when we run as root. Without the packages: skipped locally, failed in CI (LUNOS_CI=1),
    where .ci/run installs them."""
    import tempfile

    import pytest

    from lunos_events.stack.stack import missing_parts

    if missing_parts():
        if os.environ.get("LUNOS_CI"):
            pytest.fail(f"Debian's {missing_parts()} are missing")
        pytest.skip(f"needs Debian's {missing_parts()}")
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)
    return workdir
