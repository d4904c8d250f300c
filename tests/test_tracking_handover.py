"""A queued operation's tracking is handed over to the dispatcher's start: when the start finds the
tracking job's id taken by a run in progress (which saw the operation still queued and ends its
chain), it waits for that run to end and queues the next one; when it cannot, the operation goes
back to the queue unstarted. Against a real arq worker."""

from __future__ import annotations

import anyio
import pytest
from arq import func
from arq.jobs import Job, JobStatus
from arq.worker import Worker

from lunos_events.bus.jobs import TRACK_OPERATION, tracking_job_id
from lunos_events.bus.redis_bus import connect_bus
from lunos_events.services import starts as starts_module
from lunos_events.services.starts import QUEUED
from lunos_events.settings import Settings
from lunos_events.store.models import PENDING
from tests.conftest import auth, create_user
from tests.fake_google import FakeGoogle, KeyQuota
from tests.helpers import generation_body
from tests.test_provider_capacity import pooled_service

pytestmark = pytest.mark.anyio


async def test_a_start_waits_for_a_tracking_run_in_progress_then_queues_the_next(settings: Settings) -> None:
    bus = await connect_bus(settings)
    running, release = anyio.Event(), anyio.Event()

    async def ending_run(ctx: dict[str, object], operation_id: str) -> None:
        running.set()
        await release.wait()  # a run that saw the operation queued, about to end its chain

    worker = Worker(
        functions=[func(ending_run, name=TRACK_OPERATION, keep_result=0)],
        redis_pool=bus.redis,
        queue_name=settings.queue_name,
        poll_delay=0.01,
        keep_result=0,
        handle_signals=False,
    )
    job = Job(tracking_job_id("op-1"), bus.redis, _queue_name=settings.queue_name)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(worker.async_run)
            assert await bus.enqueue_tracking("op-1")
            with anyio.fail_after(10):
                await running.wait()
            assert await job.status() == JobStatus.in_progress
            assert not await bus.enqueue_tracking("op-1", 60)  # the id is taken while it runs

            handed: list[bool] = []

            async def start() -> None:
                handed.append(await bus.hand_tracking_over("op-1", 60, wait_seconds=10))

            group.start_soon(start)
            await anyio.sleep(0.3)
            assert handed == []  # it waits for the run in progress
            release.set()
            with anyio.fail_after(10):
                while not handed:
                    await anyio.sleep(0.02)
            assert handed == [True]
            # The next run is due: deferred by a poll interval, so the operation is tracked again.
            assert await job.status() == JobStatus.deferred
            # A run already due is enough: nothing to wait for.
            with anyio.fail_after(1):
                assert await bus.hand_tracking_over("op-1", 60, wait_seconds=10)
            group.cancel_scope.cancel()
    finally:
        await worker.close()


async def test_a_start_it_cannot_hand_tracking_to_goes_back_to_the_queue(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a start that nothing tracks: when the tracking job cannot be made due (a run holding
    its id does not end in time, or Redis fails), the claim is undone before the provider is called."""
    async with pooled_service(settings, FakeGoogle(latency_seconds=60), 1, "key-a", worker=False) as (
        rt,
        client,
        server,
    ):
        server.fake.keys["key-a"] = KeyQuota(max_running=5)  # Veo itself would take it
        key = await create_user(rt, "handover", "100.00")
        ids = []
        for prompt in ("running", "queued"):
            response = await client.post(
                "/v1/video/generations", headers=auth(key), json=generation_body(prompt=prompt)
            )
            assert response.status_code == 200, response.text
            ids.append(str(response.json()["id"]))
        running, queued = ids
        assert (await client.post(f"/v1/video/generations/{running}/cancel", headers=auth(key))).is_success
        starts = len(server.fake.start_requests)

        # The queued one's tracking job id is held by a run that is not ending.
        held, release = anyio.Event(), anyio.Event()

        async def stuck_run(ctx: dict[str, object], operation_id: str) -> None:
            if operation_id == queued:
                held.set()
                await release.wait()

        worker = Worker(
            functions=[func(stuck_run, name=TRACK_OPERATION, keep_result=0)],
            redis_pool=(await connect_bus(rt.settings)).redis,  # the worker closes it
            queue_name=rt.settings.queue_name,
            poll_delay=0.01,
            keep_result=0,
            handle_signals=False,
        )
        monkeypatch.setattr(starts_module, "HANDOVER_SECONDS", 0.3)
        starter = rt.generations.starter
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(worker.async_run)
                with anyio.fail_after(10):
                    await held.wait()
                op = await rt.store.operation(queued)
                assert op is not None
                credential = await starter.capacity.take(
                    op.id, op.provider_model, op.deadline_at_ms, behind_queue=False
                )
                assert credential is not None
                assert await starter.start_on(op, credential, untracked=True) == (QUEUED, None)
                release.set()
                job = Job(tracking_job_id(queued), rt.bus.redis, _queue_name=rt.settings.queue_name)
                with anyio.fail_after(10):
                    while await job.status() == JobStatus.in_progress:
                        await anyio.sleep(0.02)
                group.cancel_scope.cancel()
        finally:
            await worker.close()

        back = await rt.store.operation(queued)
        assert back is not None and back.status == PENDING
        assert back.provider_credential is None and back.provider_operation is None
        assert back.queued_at_ms is not None  # still in the queue, for the dispatcher's next round
        assert len(server.fake.start_requests) == starts  # the provider was never asked
        # Its slot was given back: it can take it again.
        assert await starter.capacity.take(op.id, op.provider_model, op.deadline_at_ms, behind_queue=False)
