"""Child processes of the stack: each in its own process group, restarted when it dies, all stopped.

Every child is a session leader (`start_new_session`), so stopping it signals its whole group and
nothing it started outlives it; `die_with_parent` has the kernel stop it if this process itself is
killed. A child that exits while the stack runs is started again, like `restart: unless-stopped` in
docker-compose.yml, and the restart is recorded (the chaos test reads those records).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lunos_events.child_processes import die_with_parent

RESTART_CHECK_SECONDS = 0.1


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    restart: bool = True
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    exits: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, exit code)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.started_at = time.monotonic()


class ChildProcesses:
    """Named children, watched from a thread that restarts the ones that exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None, restart: bool = True
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(name, argv, env, self.log_dir / f"{name}.log", cwd, restart)
        with self._lock:
            if name in self.children:
                raise ValueError(f"a child named {name} exists")
            child.launch()
            self.children[name] = child
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="stack-children", daemon=True)
            self._watcher.start()
        return child

    def signal(self, name: str, signum: int = signal.SIGKILL) -> None:
        """Signal a child's whole process group (kill -9 by default); the watcher restarts it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.children[name].pid, signum)

    def _watch(self) -> None:
        while not self._stopping.wait(RESTART_CHECK_SECONDS):
            with self._lock:
                for child in self.children.values():
                    process = child.process
                    if process is None or process.poll() is None or self._stopping.is_set():
                        continue
                    child.exits.append((time.monotonic(), process.returncode))
                    # The group may hold grandchildren; they go with their leader.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    if child.restart:
                        child.launch()
                    else:
                        child.process = None

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every group, wait for them, then SIGKILL what is left; nothing keeps running."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            running = [c.process for c in self.children.values() if c.process is not None]
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for process in running:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
