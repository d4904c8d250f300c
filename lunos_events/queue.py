"""Names and ids of arq jobs, shared by the API (which enqueues) and the worker (which runs them)."""

from __future__ import annotations

from arq.connections import ArqRedis

TRACK_OPERATION = "track_operation"


def tracking_job_id(operation_id: str) -> str:
    # One job id per operation: enqueueing an operation that is already tracked is a no-op.
    return f"track:{operation_id}"


async def enqueue_tracking(redis: ArqRedis, operation_id: str, defer_seconds: float = 0) -> bool:
    job = await redis.enqueue_job(
        TRACK_OPERATION, operation_id, _job_id=tracking_job_id(operation_id), _defer_by=defer_seconds or None
    )
    return job is not None
