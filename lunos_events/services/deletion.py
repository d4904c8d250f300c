"""Deleting a generation's video: by its owner (`DELETE /v1/video/generations/{id}`), or by the
worker once LUNOS_VIDEO_RETENTION_DAYS have passed since the generation ended.

The operation stays, marked `deleted` without a `video_url`, with a `video.deleted` event; its
events and usage stay, and no money moves. An active operation is refused (409): the client
cancels it first, so what a delete means for the charge is never a question. The stored videos,
poster and inputs are removed BEFORE the row is marked: a crash in between leaves an operation
that still says `completed` and whose delete (or the next retention run) is simply repeated,
never a `deleted` row whose file is kept for ever.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlmodel import col

from lunos_events.errors import Conflict, NotFound
from lunos_events.ids import now_ms, operation_owner, poster_key, sample_key
from lunos_events.services.events import append_event
from lunos_events.services.input_store import stored_inputs
from lunos_events.services.outbox import Outbox
from lunos_events.services.status import event_type, status_object
from lunos_events.services.timing import timestamps
from lunos_events.storage.base import VideoStorage
from lunos_events.store.models import (
    ACTIVE_STATUSES,
    COMPLETED,
    DELETED,
    TERMINAL_STATUSES,
    Operation,
)
from lunos_events.store.records import StoredEvent
from lunos_events.store.transactions import Store

log = logging.getLogger(__name__)

NOT_FOUND = "Operation not found"
RETENTION_BATCH = 100


def stored_keys(
    video_key: str, outcome: dict[str, Any] | None, parameters: dict[str, Any] | None
) -> list[str]:
    """Every object the operation keeps in storage: its samples, their poster, its stored inputs."""
    outcome, parameters = outcome or {}, parameters or {}
    samples = max(1, len(outcome.get("video_urls") or ()))
    keys = [*(sample_key(video_key, index) for index in range(samples)), poster_key(video_key)]
    if (inputs := stored_inputs(parameters)) is not None:
        keys.append(inputs)
    return keys


async def _remove(storage: VideoStorage, row: Any) -> None:
    for key in stored_keys(row.video_key, row.outcome, row.parameters):
        await storage.delete(key)


_MARK_DELETED = (
    update(Operation)
    .where(col(Operation.id) == bindparam("operation_id"), col(Operation.status).in_(TERMINAL_STATUSES))
    .values(status=DELETED, video_url=None, outcome=None, updated_at_ms=bindparam("now"))
    .returning(
        col(Operation.account_id),
        col(Operation.app_id),
        col(Operation.error),
        col(Operation.error_code),
        col(Operation.created_at_ms),
        col(Operation.started_at_ms),
        col(Operation.completed_at_ms),
    )
)


async def _mark_deleted(store: Store, op_ids: list[str]) -> list[StoredEvent]:
    """Mark the operations deleted, each with its `video.deleted` event (none for one already
    marked): in one transaction, in account order (each event takes its account's next number)."""
    now = now_ms()
    events = []
    async with store.transaction() as tx:
        for op_id in sorted(op_ids, key=lambda op_id: operation_owner(op_id) or ""):
            row = await tx.first(_MARK_DELETED, operation_id=op_id, now=now)
            if row is None:
                continue
            account_id, app_id, error, error_code, created_at_ms, started_at_ms, completed_at_ms = row
            times = timestamps(DELETED, created_at_ms, started_at_ms, completed_at_ms)
            data = status_object(op_id, DELETED, None, error, error_code, timing=times)
            event = await append_event(
                tx,
                account_id=account_id,
                operation_id=op_id,
                app_id=app_id,
                type=event_type(DELETED),
                data=data,
            )
            events.append(event)
    return events


async def delete_generation(
    store: Store, storage: VideoStorage, outbox: Outbox, account_id: str, op_id: str
) -> dict[str, Any]:
    """Remove the operation's video and mark it deleted (its `video.deleted` event goes out at
    once); returns its status, as a poll now shows it. Repeating it answers the same."""
    if operation_owner(op_id) != account_id:
        raise NotFound(NOT_FOUND)
    row = await store.operation(op_id)
    if row is None or row.account_id != account_id:
        raise NotFound(NOT_FOUND)
    if row.status in ACTIVE_STATUSES:
        raise Conflict(f"Operation is still {row.status}: cancel it first, then delete it")
    # Also when already deleted: a storage delete that failed before is retried (it is idempotent).
    # A repeat (the row has no outcome left) retries the first video, the poster and the inputs.
    await _remove(storage, row)
    if row.status != DELETED:
        for event in await _mark_deleted(store, [op_id]):
            await outbox.release(event)
    times = timestamps(DELETED, row.created_at_ms, row.started_at_ms, row.completed_at_ms)
    return status_object(op_id, DELETED, None, row.error, row.error_code, timing=times)


async def delete_expired_videos(store: Store, storage: VideoStorage, ended_before_ms: int) -> int:
    """Delete the videos of generations that completed before `ended_before_ms`, a batch at a
    time; returns how many operations were marked deleted. (Failed and cancelled ones have none.)
    Their `video.deleted` events are published by the worker's relay."""
    total = 0
    while True:
        rows = await store.all(
            select(
                col(Operation.id), col(Operation.video_key), col(Operation.outcome), col(Operation.parameters)
            )
            .where(col(Operation.status) == COMPLETED, col(Operation.completed_at_ms) < ended_before_ms)
            .limit(RETENTION_BATCH)
        )
        if not rows:
            return total
        for row in rows:
            await _remove(storage, row)
        total += len(await _mark_deleted(store, [row.id for row in rows]))
        if len(rows) < RETENTION_BATCH:
            return total
