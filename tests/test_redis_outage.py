"""Redis going away mid-run: submits refuse fast without charging, reads go on, work resumes after."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.services import accounts
from lunos_events.serving import running_service
from tests.conftest import auth, create_user, make_settings
from tests.helpers import generation_body, wait_for_status

pytestmark = pytest.mark.anyio


async def test_submit_refuses_fast_and_tracking_resumes_when_redis_returns(tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis")
    redis_server.start()
    try:
        settings = make_settings(tmp_path, redis_server.url, simulator_latency_seconds=1.0)
        async with (
            running_service(settings) as rt,
            httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
        ):
            key = await create_user(rt, "weathered", "10.00")
            before = await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
            op_id = before.json()["id"]

            redis_server.stop()  # an empty Redis comes back: queued jobs are gone with it
            started = time.monotonic()
            refused = await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
            assert refused.status_code == 503 and "error" in refused.json()
            assert int(refused.headers["retry-after"]) > 0
            assert time.monotonic() - started < 3
            assert (await accounts.get_account(rt.store, "weathered")).balance_cents == 1000 - 320

            status = await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))
            assert status.status_code == 200 and status.json()["status"] == "processing"

            redis_server.start()
            # The worker reconnects and its reconciliation re-queues the operation from the database.
            final = await wait_for_status(client, op_id, auth(key), timeout=90)
            assert final["status"] == "completed"
            after = await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
            assert after.status_code == 200
            assert (await wait_for_status(client, after.json()["id"], auth(key)))["status"] == "completed"
    finally:
        redis_server.stop()
