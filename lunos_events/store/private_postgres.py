"""A private PostgreSQL cluster as a child process, from Debian's packaged binaries.

The production-shape benches (and anything else that wants a real PostgreSQL without touching the
machine's own cluster) run one: `initdb` into a fresh directory, `postgres` on a free loopback port
with trust authentication for loopback only, removed again on stop. PostgreSQL refuses to run as
root, so when we are root the cluster belongs to the `postgres` system user and its processes drop
to that user before they start (the work directory must then be reachable by that user).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lunos_events.child_processes import die_with_parent, free_port

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "lunos"


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL's bin directory, or the one holding `initdb` on PATH."""
    versions = sorted(
        (path for path in DEBIAN_BINARIES.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdecimal() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL binaries found: apt-get install -y postgresql")


class PrivatePostgres:
    def __init__(self, workdir: Path, port: int | None = None, max_connections: int = 200) -> None:
        self.datadir = workdir / "pgdata"
        self.max_connections = max_connections
        self.port = port or free_port()
        self.bin_dir = postgres_bin_dir()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _as_owner() -> None:
        """A `preexec_fn`: become `postgres` if we are root, and die with the parent."""
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.setgid(owner.pw_gid)
            os.setuid(owner.pw_uid)
        die_with_parent()

    def start(self, timeout: float = 60.0) -> None:
        self.datadir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
            shutil.chown(self.datadir.parent, "postgres", "postgres")
        initdb = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(self.datadir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-instructions",
            ],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=self._as_owner,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb {self.datadir} failed: {initdb.stderr.strip()}")
        self.start_server(timeout)

    def start_server(self, timeout: float = 60.0) -> None:
        self._process = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.datadir}",
                "-c",
                f"max_connections={self.max_connections}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=self._as_owner,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self._process.returncode}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not start in time")
            time.sleep(0.1)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop the server (a fast shutdown: clients are cut off) and start it again on its data."""
        self.stop_server()
        self.start_server(timeout)

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.datadir, ignore_errors=True)

    def stop_server(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # a "fast" shutdown: clients are disconnected
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
