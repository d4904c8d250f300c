"""Creating and starting generations, reading their status, cancelling them.

Submits come in through services/admission.py: `create`, then `queue_launch` in its Redis
pipeline, then `start`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from lunos_events.store.models import CANCELLED, COMPLETED, FAILED, PENDING, Operation
from lunos_events.db.point_reads import OPERATION_STATUS
from lunos_events.errors import Conflict, NotFound, ProviderStartFailed
from lunos_events.ids import now_ms, operation_id, operation_owner, video_key
from lunos_events.logs import operation_context
from lunos_events.providers.base import GenerationJob
from lunos_events.queue import queue_tracking
from lunos_events.redis_batches import RedisCommands
from lunos_events.runtime import Runtime
from lunos_events.services import outbox
from lunos_events.services.accounts import Principal
from lunos_events.services.events import StoredEvent, mark_published
from lunos_events.services.generation_request import GenerationRequest
from lunos_events.services.lifecycle import (
    NewOperation,
    attach_provider_operation,
    create_operation,
    finish_operation,
)
from lunos_events.services.status import status_object
from lunos_events.webhooks.targets import resolve_target

log = logging.getLogger(__name__)

START_FAILED = "Failed to start video generation"
_ID_ATTEMPTS = 64
# Stored in `parameters` next to the documented fields and handed to the provider as options.
MODEL_OPTIONS = ("resolution", "seed", "personGeneration")


def provider_job(op: Operation | NewOperation) -> GenerationJob:
    params = op.parameters
    return GenerationJob(
        operation_id=op.id,
        provider_model=op.provider_model,
        prompt=op.prompt,
        aspect_ratio=params["aspectRatio"],
        duration_seconds=params["durationSeconds"],
        negative_prompt=params.get("negativePrompt"),
        options={name: params[name] for name in MODEL_OPTIONS if params.get(name) is not None},
    )


def new_operation(
    rt: Runtime, principal: Principal, request: GenerationRequest, stamp_ms: int
) -> NewOperation:
    created = now_ms()
    return NewOperation(
        id=operation_id(principal.account_id, stamp_ms),
        account_id=principal.account_id,
        app_id=request.app_id,
        model=request.model.id,
        provider_model=request.model.provider_model,
        prompt=request.prompt,
        parameters={
            "aspectRatio": request.aspect_ratio,
            "negativePrompt": request.negative_prompt,
            "durationSeconds": request.duration_seconds,
            "response_format": request.response_format,
            **request.options,
        },
        video_key=video_key(principal.account_id, stamp_ms),
        cost_cents=request.model.cost_cents(request.duration_seconds),
        created_at_ms=created,
        deadline_at_ms=created + int(rt.settings.operation_deadline_seconds * 1000),
    )


async def create(
    rt: Runtime, principal: Principal, request: GenerationRequest
) -> tuple[NewOperation, StoredEvent]:
    """Charge and record the pending operation and its event; nothing is published or started yet."""
    if request.webhook is not None:
        await resolve_target(request.webhook.url, rt.settings.webhook_allow_private)
    for _ in range(_ID_ATTEMPTS):
        op = new_operation(rt, principal, request, rt.stamps.next(principal.account_id))
        try:
            return op, await rt.writes.run(create_operation, op, request.webhook)
        except IntegrityError:
            continue  # another API process took this id: the next stamp is past it
    raise RuntimeError("could not allocate an operation id")


def queue_launch(pipe: RedisCommands, rt: Runtime, op: NewOperation, event: StoredEvent) -> None:
    """Add what must precede the provider call to `pipe`: the `video.pending` event and tracking.

    Tracking is queued before the provider is called: if this process dies mid-start, the tracker
    notices the operation never started and refunds it.
    """
    outbox.queue_release(pipe, rt, event)
    queue_tracking(pipe, rt.settings.queue_name, op.id, rt.settings.poll_interval_seconds)


async def start(rt: Runtime, op: NewOperation, published: StoredEvent) -> dict[str, Any]:
    """Start a launched operation at the provider; a refusal fails and refunds it (502).

    `published` is the operation's event, released with the launch: it is marked published in the
    same commit that records the provider's operation name.
    """
    with operation_context(op.id):
        try:
            name = await rt.provider.start(provider_job(op))
        except Exception:
            log.exception("provider refused to start %s", op.id)
            await rt.writes.run(mark_published, published)
            await finish_operation(rt, op.id, FAILED, error=START_FAILED, refund=True)
            raise ProviderStartFailed() from None
    await rt.writes.run(attach_provider_operation, op.id, name, published)
    return {"id": op.id, "operation_name": name, "status": PENDING}


async def get_status(rt: Runtime, principal: Principal, op_id: str) -> dict[str, Any]:
    # Another account's id answers exactly like an unknown one: existence is never revealed.
    if operation_owner(op_id) != principal.account_id:
        raise NotFound("Operation not found")
    pending = rt.pending_statuses
    if pending.known_pending(op_id):
        return status_object(op_id, PENDING, None, None)
    version = pending.version
    row = await rt.reads.one(OPERATION_STATUS, operation_id=op_id, account_id=principal.account_id)
    if row is None:
        raise NotFound("Operation not found")
    status, video_url, error, video_key = row
    if status == PENDING and error is None:  # what the answer from memory says
        pending.remember(op_id, version)
    if video_url and status == COMPLETED:
        video_url = await refreshed_video_url(rt, op_id, video_key, video_url)
    return status_object(op_id, status, video_url, error)


async def refreshed_video_url(rt: Runtime, op_id: str, key: str, url: str) -> str:
    """Re-sign a presigned video URL that is close to expiry, and keep the new one."""
    fresh = await rt.storage.refresh_url(key, url)
    if fresh is None:
        return url
    async with rt.engine.begin() as conn:
        await conn.execute(
            update(Operation).where(Operation.id == op_id, Operation.video_url == url).values(video_url=fresh)
        )
    return fresh


async def cancel(rt: Runtime, principal: Principal, op_id: str) -> dict[str, Any]:
    """Cancel a pending operation: refunded, with its `video.cancelled` event; 409 once it has ended."""
    await get_status(rt, principal, op_id)  # 404 for unknown ids and other accounts' alike
    if await finish_operation(rt, op_id, CANCELLED, refund=True) is not None:
        return status_object(op_id, CANCELLED, None, None)
    current = await get_status(rt, principal, op_id)
    raise Conflict(f"Operation is already {current['status']} and cannot be cancelled")
