"""A queued operation's tracking is handed over to the dispatcher's start: when the start finds the
tracking job's id taken by a run in progress (which saw the operation still queued and ends its
chain), it waits for that run to end and queues the next one. Against a real arq worker."""

from __future__ import annotations

import anyio
import pytest
from arq import func
from arq.jobs import Job, JobStatus
from arq.worker import Worker

from lunos_events.bus.jobs import TRACK_OPERATION, tracking_job_id
from lunos_events.bus.redis_bus import connect_bus
from lunos_events.settings import Settings

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
