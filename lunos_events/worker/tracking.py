"""Tracking one operation: a single poll of the provider per job run, never a sleep in a job slot."""

from __future__ import annotations

import logging

from lunos_events.faults import crash_point
from lunos_events.ids import now_ms
from lunos_events.providers.base import Done, Failed, Pending, ProviderTransientError
from lunos_events.runtime import Runtime
from lunos_events.services.generations import START_FAILED, provider_job
from lunos_events.store.models import COMPLETED, FAILED, PENDING, Operation

log = logging.getLogger(__name__)

TIMED_OUT = "Video generation timed out"


async def load_operation(rt: Runtime, operation_id: str) -> Operation | None:
    return await rt.store.operation(operation_id)


async def track(rt: Runtime, operation_id: str) -> float | None:
    """Advance one operation as far as it can go now.

    Returns the seconds until it should be polled again, or None once there is nothing left to do.
    Safe to run twice or after a crash: every state change is a guarded transition, and storing the
    video under the operation's fixed key simply overwrites a copy left by an earlier attempt.
    """
    op = await load_operation(rt, operation_id)
    if op is None or op.status != PENDING:
        return None
    interval = rt.settings.poll_interval_seconds
    now = now_ms()

    if op.provider_operation is None:
        # Start is in flight in the API process, or that process died before recording it.
        if now - op.created_at_ms > rt.settings.start_grace_seconds * 1000:
            await rt.generations.lifecycle.finish(op.id, FAILED, error=START_FAILED, refund=True)
            return None
        return interval
    if now > op.deadline_at_ms:
        await rt.generations.lifecycle.finish(op.id, FAILED, error=TIMED_OUT, refund=True)
        return None

    try:
        result = await rt.provider.poll(op.provider_operation, provider_job(op))
    except ProviderTransientError as exc:
        log.warning("poll of %s failed, will retry: %s", op.id, exc)
        return interval

    if isinstance(result, Pending):
        return interval
    if isinstance(result, Failed):
        await rt.generations.lifecycle.finish(op.id, FAILED, error=result.reason, refund=True)
        return None
    assert isinstance(result, Done)
    try:
        crash_point(rt.settings, "provider_done")
        await rt.storage.save(op.video_key, result.video_path)
    finally:
        result.video_path.unlink(missing_ok=True)
    crash_point(rt.settings, "stored")
    url = await rt.storage.url_for(op.video_key)
    await rt.generations.lifecycle.finish(op.id, COMPLETED, video_url=url)
    return None
