"""The worker's reconcile queues again the jobs Redis lost, and only those: a crashed Redis that
comes back from its append-only file may lack its last second of writes while every other key
(the mark of the last count restore included) is still there."""

from __future__ import annotations

import pytest

from bench.common import forget_jobs
from lunos_events.settings import Settings
from lunos_events.worker.app import reconcile_operations
from tests.conftest import auth, create_user
from tests.fake_google import FakeGoogle
from tests.helpers import generation_body
from tests.test_provider_capacity import pooled_service

pytestmark = pytest.mark.anyio


async def test_reconcile_queues_again_only_the_jobs_redis_lost(settings: Settings) -> None:
    # No worker runs: its cron would reconcile too, and no tracking run moves a job meanwhile.
    async with pooled_service(settings, FakeGoogle(latency_seconds=60), 1, "key-a", worker=False) as (
        rt,
        client,
        _,
    ):
        key = await create_user(rt, "amnesia", "100.00")
        ids = []
        for prompt in ("running", "queued", "also queued"):
            response = await client.post(
                "/v1/video/generations", headers=auth(key), json=generation_body(prompt=prompt)
            )
            assert response.status_code == 200, response.text
            ids.append(str(response.json()["id"]))
        running, queued, also_queued = ids
        first = await rt.store.operation(running)
        assert first is not None and first.provider_operation is not None
        redis, queue = rt.bus.redis, rt.settings.queue_name

        async def jobs() -> set[str]:
            return {job.job_id for job in await redis.queued_jobs(queue_name=queue) if job.job_id}

        # The first run makes sure each has its job: the queued ones get their deadline watch.
        await reconcile_operations({"rt": rt})
        assert {f"track:{running}", f"watch:{queued}", f"watch:{also_queued}"} <= await jobs()
        assert await reconcile_operations({"rt": rt}) == 0  # nothing missing, nothing queued

        # Redis loses the last writes: the running operation's tracking job and one watch.
        await forget_jobs(redis, queue, [f"track:{running}", f"watch:{queued}"])
        assert await reconcile_operations({"rt": rt}) == 2
        found = await jobs()
        assert {f"track:{running}", f"watch:{queued}", f"watch:{also_queued}"} <= found
        assert await reconcile_operations({"rt": rt}) == 0
