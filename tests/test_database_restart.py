"""A PostgreSQL that dropped every connection (a restart): the requests that meet a dead
connection get a 503 with Retry-After, never a 500, and the next ones are served again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy.engine import make_url

from lunos_events.runtime import Runtime
from lunos_events.serving import running_service
from lunos_events.store.private_postgres import PrivatePostgres
from tests.conftest import auth, create_user, make_settings, run_on_postgres
from tests.processes import stack_workdir

pytestmark = pytest.mark.anyio


async def test_requests_after_the_database_dropped_its_connections(
    service: Runtime, client: httpx.AsyncClient
) -> None:
    url = make_url(service.settings.resolved_database_url())
    if url.get_backend_name() != "postgresql":
        pytest.skip("a PostgreSQL server's connections (set LUNOS_TEST_DATABASE_URL)")
    key = await create_user(service, "restarted")
    for _ in range(5):  # connections in the pool, as a running service has them
        assert (await client.get("/v1/account", headers=auth(key))).status_code == 200

    run_on_postgres(
        service.settings.resolved_database_url(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{url.database}' AND pid <> pg_backend_pid()",
    )

    statuses = [(await client.get("/v1/account", headers=auth(key))) for _ in range(3)]
    refused = [answer for answer in statuses if answer.status_code != 200]
    assert all(answer.status_code == 503 for answer in refused), [a.text for a in refused]
    assert all(answer.headers["Retry-After"] and answer.json()["error"] for answer in refused)
    assert len(refused) <= 1  # a dead connection invalidates the whole pool: one failure at most
    assert statuses[-1].status_code == 200
    assert statuses[-1].json()["id"] == "restarted"


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    workdir = stack_workdir("lunos-pg-")
    with PrivatePostgres(workdir) as postgres:
        yield postgres


async def test_requests_while_the_database_is_down_and_after_it_is_back(
    redis_url: str, tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    """A PostgreSQL that is down refuses new connections: 503 with Retry-After, then 200 again."""
    postgres = private_postgres
    settings = make_settings(tmp_path, redis_url, database_url=postgres.url)
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "downtime")
        assert (await client.get("/v1/account", headers=auth(key))).status_code == 200
        await anyio.to_thread.run_sync(postgres.stop_server)
        # The first meets the pooled connection dead; the next ones find nobody listening.
        for _ in range(3):
            down = await client.get("/v1/account", headers=auth(key))
            assert down.status_code == 503, down.text
            assert down.headers["Retry-After"] and down.json()["error"]
        await anyio.to_thread.run_sync(postgres.start_server)
        back = await client.get("/v1/account", headers=auth(key))
        assert back.status_code == 200, back.text
