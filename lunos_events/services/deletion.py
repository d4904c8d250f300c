"""Deleting a generation's video: by its owner (`DELETE /v1/video/generations/{id}`), or by the
worker once LUNOS_VIDEO_RETENTION_DAYS have passed since the generation ended.

The operation stays, marked `deleted` without a `video_url`; its events and usage stay, and no
money moves. A pending operation is refused (409): the client cancels it first, so what a delete
means for the charge is never a question. The stored videos, poster and inputs are removed BEFORE
the row is marked: a crash in between leaves an operation that still says `completed` and whose
delete (or the next retention run) is simply repeated, never a `deleted` row whose file is kept
for ever.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from lunos_events.errors import Conflict, NotFound
from lunos_events.ids import now_ms, operation_owner, poster_key, sample_key
from lunos_events.services.input_store import stored_inputs
from lunos_events.services.status import status_object
from lunos_events.storage.base import VideoStorage
from lunos_events.store.models import (
    ACTIVE_STATUSES,
    COMPLETED,
    DELETED,
    TERMINAL_STATUSES,
    Operation,
)
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


async def _mark_deleted(store: Store, op_ids: list[str]) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            update(Operation)
            .where(col(Operation.id).in_(op_ids), col(Operation.status).in_(TERMINAL_STATUSES))
            .values(status=DELETED, video_url=None, outcome=None, updated_at_ms=now_ms())
        )


async def delete_generation(
    store: Store, storage: VideoStorage, account_id: str, op_id: str
) -> dict[str, Any]:
    """Remove the operation's video and mark it deleted; repeating it answers the same."""
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
        await _mark_deleted(store, [op_id])
    return status_object(op_id, DELETED, None, None)


async def delete_expired_videos(store: Store, storage: VideoStorage, ended_before_ms: int) -> int:
    """Delete the videos of generations that completed before `ended_before_ms`, a batch at a
    time; returns how many operations were marked deleted. (Failed and cancelled ones have none.)"""
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
        await _mark_deleted(store, [row.id for row in rows])
        total += len(rows)
        if len(rows) < RETENTION_BATCH:
            return total
