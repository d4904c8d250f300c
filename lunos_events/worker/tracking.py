"""Tracking one operation: a single poll of the provider per job run, never a sleep in a job slot."""

from __future__ import annotations

import logging
from typing import Any

from lunos_events.errors import DEADLINE_EXCEEDED, INPUT_INVALID, START_FAILED_CODE
from lunos_events.ids import now_ms
from lunos_events.providers.base import Done, Failed, Pending, ProviderTransientError
from lunos_events.runtime import Runtime
from lunos_events.services.generation_request import START_DEADLINE
from lunos_events.services.input_store import InputsMissing
from lunos_events.services.provider_jobs import (
    START_FAILED,
    STARTS_IN_WORKER,
    media_loader,
    provider_job,
)
from lunos_events.store.models import ACTIVE_STATUSES, COMPLETED, FAILED, PENDING, Operation
from lunos_events.worker.outputs import store_outputs
from lunos_events.worker.worker_start import start_in_worker

log = logging.getLogger(__name__)

TIMED_OUT = "Video generation timed out"
NOT_STARTED = "Video generation could not start before its start deadline"


async def load_operation(rt: Runtime, operation_id: str) -> Operation | None:
    return await rt.store.operation(operation_id)


async def track(rt: Runtime, operation_id: str) -> float | None:
    """Advance one operation as far as it can go now.

    Returns the seconds until it should be polled again, or None once there is nothing left to do.
    Safe to run twice or after a crash: every state change is a guarded transition, and storing the
    video under the operation's fixed key simply overwrites a copy left by an earlier attempt.
    """
    op = await load_operation(rt, operation_id)
    if op is None or op.status not in ACTIVE_STATUSES:
        return None
    interval = rt.settings.poll_interval_seconds
    now = now_ms()

    if now > op.deadline_at_ms:
        await _time_out(rt, op.id)
        return None
    if op.provider_operation is None:
        return await _unstarted(rt, op, now)

    try:
        result = await rt.provider.poll(op.provider_operation, provider_job(op, media_loader(rt.storage, op)))
    except ProviderTransientError as exc:
        log.warning("poll of %s failed, will retry: %s", op.id, exc)
        return interval
    except InputsMissing as exc:
        # Nothing will bring them back: fail now rather than at the deadline.
        await rt.generations.lifecycle.finish(
            op.id,
            FAILED,
            error=f"The generation's inputs are gone: {exc}",
            error_code=INPUT_INVALID,
            refund=True,
        )
        return None

    if isinstance(result, Pending):
        await rt.generations.progress_reports.report(op)
        return interval
    if isinstance(result, Failed):
        await rt.generations.lifecycle.finish(
            op.id,
            FAILED,
            error=result.reason,
            error_code=result.code,
            outcome=_safety(result),
            refund=True,
        )
        return None
    assert isinstance(result, Done)
    urls, thumbnail = await store_outputs(rt, op.video_key, result)
    await rt.generations.lifecycle.finish(
        op.id, COMPLETED, video_url=urls[0], outcome={"video_urls": urls, "thumbnail_url": thumbnail}
    )
    return None


async def _unstarted(rt: Runtime, op: Operation, now: int) -> float | None:
    """Queued, waiting for its inputs, or its start in flight (in this or an API process)."""
    interval = rt.settings.poll_interval_seconds
    if op.provider_credential is None and _start_deadline_passed(op, now):
        await _not_started(rt, op.id)
        return None
    if op.provider_credential is None and op.queued_at_ms is not None:
        # The dispatcher starts it (and tracks it from then on): until then only its deadlines
        # matter, which one deferred job watches, rather than a poll of every queued operation.
        await rt.bus.enqueue_watch(op.id, seconds_to_deadline(op, now))
        return None
    if op.provider_credential is None and op.parameters.get(STARTS_IN_WORKER):
        return await start_in_worker(rt, op)
    # A start claimed in this or an API process, or a submit that died before claiming it.
    since = op.started_at_ms or op.created_at_ms
    if now - since > rt.settings.start_grace_seconds * 1000:
        await rt.generations.lifecycle.finish(
            op.id, FAILED, error=START_FAILED, error_code=START_FAILED_CODE, refund=True
        )
        return None
    return interval


async def watch_queued(rt: Runtime, operation_id: str) -> float | None:
    """A queued operation's deadline watch: fails it if it is still queued past a deadline.
    Returns the seconds until it should look again, or None once there is nothing to watch."""
    op = await load_operation(rt, operation_id)
    if op is None or op.status != PENDING or op.provider_credential is not None or op.queued_at_ms is None:
        return None  # ended, or started (its tracking job took over), or not queued
    now = now_ms()
    if now > op.deadline_at_ms:
        await _time_out(rt, op.id)
        return None
    if _start_deadline_passed(op, now):
        await _not_started(rt, op.id)
        return None
    return seconds_to_deadline(op, now)


async def _time_out(rt: Runtime, operation_id: str) -> None:
    await rt.generations.lifecycle.finish(
        operation_id, FAILED, error=TIMED_OUT, error_code=DEADLINE_EXCEEDED, refund=True
    )


async def _not_started(rt: Runtime, operation_id: str) -> None:
    await rt.generations.lifecycle.finish(
        operation_id, FAILED, error=NOT_STARTED, error_code=DEADLINE_EXCEEDED, refund=True
    )


def _start_deadline_ms(op: Operation) -> int | None:
    start_deadline = op.parameters.get(START_DEADLINE)
    return None if not start_deadline else op.created_at_ms + int(start_deadline * 1000)


def _start_deadline_passed(op: Operation, now: int) -> bool:
    start_deadline = _start_deadline_ms(op)
    return start_deadline is not None and now > start_deadline


def seconds_to_deadline(op: Operation, now: int) -> float:
    """Until the first of a queued operation's deadlines (its start deadline, or its deadline)."""
    deadline = min(op.deadline_at_ms, _start_deadline_ms(op) or op.deadline_at_ms)
    return max(0.0, (deadline - now) / 1000) + 0.05  # just past it


def _safety(result: Failed) -> dict[str, Any] | None:
    if not result.safety_reasons and result.filtered_count is None:
        return None
    return {"safety": {"reasons": list(result.safety_reasons), "filtered_count": result.filtered_count}}
