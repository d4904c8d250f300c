"""Names and ids of arq jobs, shared by the API (which enqueues) and the worker (which runs them).

Jobs with a fixed id are queued with one atomic script instead of `ArqRedis.enqueue_job`, which
spends three round trips (WATCH, EXISTS, MULTI/EXEC) on the same check-and-set. The script writes
exactly what enqueue_job writes (arq's serialised job under its key, the id on the queue's sorted
set, the same expiry), so arq's worker runs these jobs like any other; being one command, it can
also ride in a pipeline with a submit's other Redis commands.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job

from lunos_events.ids import now_ms
from lunos_events.redis_batches import RedisCommands

TRACK_OPERATION = "track_operation"

# KEYS: job key, result key, queue. ARGV: expiry ms, serialised job, score, job id.
_ENQUEUE_UNIQUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


def tracking_job_id(operation_id: str) -> str:
    # One job id per operation: enqueueing an operation that is already tracked is a no-op.
    return f"track:{operation_id}"


def queue_unique_job(
    pipe: RedisCommands, queue_name: str, job_id: str, function: str, *args: Any, defer_seconds: float = 0
) -> None:
    """Add "queue this job unless a job with this id is queued, running or has a result" to `pipe`.

    The pipeline's result for it is 1 when queued, 0 when the id was taken.
    """
    enqueued_ms = now_ms()
    defer_ms = round(defer_seconds * 1000)
    job = serialize_job(function, args, {}, None, enqueued_ms)
    pipe.eval(
        _ENQUEUE_UNIQUE,
        3,
        job_key_prefix + job_id,
        result_key_prefix + job_id,
        queue_name,
        defer_ms + expires_extra_ms,
        job,
        enqueued_ms + defer_ms,
        job_id,
    )


def queue_tracking(pipe: RedisCommands, queue_name: str, operation_id: str, defer_seconds: float = 0) -> None:
    queue_unique_job(
        pipe,
        queue_name,
        tracking_job_id(operation_id),
        TRACK_OPERATION,
        operation_id,
        defer_seconds=defer_seconds,
    )


async def enqueue_unique_job(
    redis: ArqRedis, job_id: str, function: str, *args: Any, defer_seconds: float = 0
) -> bool:
    """`queue_unique_job` on its own: True when queued, False when the id was taken."""
    async with redis.pipeline(transaction=False) as pipe:
        queue_unique_job(pipe, redis.default_queue_name, job_id, function, *args, defer_seconds=defer_seconds)
        (queued,) = await pipe.execute()
    return bool(queued)


async def enqueue_tracking(redis: ArqRedis, operation_id: str, defer_seconds: float = 0) -> bool:
    return await enqueue_unique_job(
        redis, tracking_job_id(operation_id), TRACK_OPERATION, operation_id, defer_seconds=defer_seconds
    )
