"""When an operation was created, started and ended, and while it runs, honest estimates of how far
it is: the timing fields of a status object.

Progress is the time since the provider accepted the operation against the model's observed median
run time (services/progress.py), held between 1 and 99 until it completes: an estimate never claims
a video is done. A queued operation's ETA is its wait plus a run: with p operations ahead of it and
n running, a start frees about every run/n seconds (Little's law), so the wait is about p * run / n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lunos_events.store.models import COMPLETED, PENDING, PROCESSING

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class QueueSpot:
    """Where a queued operation stands: 1 is next; `running` operations of its model hold the slots."""

    position: int
    running: int


def timestamps(
    status: str, created_at_ms: int, started_at_ms: int | None, completed_at_ms: int | None
) -> dict[str, Any]:
    """`created_at`, and `started_at` / `completed_at` once they happened (ISO 8601, UTC)."""
    times = {"created_at": iso(created_at_ms)}
    # A start is claimed (and stamped) before the provider accepts it: a pending one has not started.
    if started_at_ms is not None and status != PENDING:
        times["started_at"] = iso(started_at_ms)
    if completed_at_ms is not None:
        times["completed_at"] = iso(completed_at_ms)
    return times


def running_progress(started_at_ms: int, run_seconds: float, at_ms: int) -> int:
    """1-99: the share of a typical run that has passed since the provider accepted it."""
    elapsed = (at_ms - started_at_ms) / 1000
    return max(1, min(99, int(100 * elapsed / max(run_seconds, 1.0))))


def running_eta(started_at_ms: int, run_seconds: float, at_ms: int) -> int:
    """Seconds until a running operation is likely done (at least 1: it is not done yet)."""
    return max(1, round(run_seconds - (at_ms - started_at_ms) / 1000))


def timing(
    status: str,
    created_at_ms: int,
    started_at_ms: int | None,
    completed_at_ms: int | None,
    *,
    run_seconds: float,
    at_ms: int,
    queued: QueueSpot | None = None,
) -> dict[str, Any]:
    """The timing fields of an operation in `status`, as of `at_ms`."""
    if status == PROCESSING and started_at_ms is not None:
        return {
            **timestamps(status, created_at_ms, started_at_ms, None),
            "progress": running_progress(started_at_ms, run_seconds, at_ms),
            "eta_seconds": running_eta(started_at_ms, run_seconds, at_ms),
        }
    if status == PENDING:
        fields: dict[str, Any] = {**timestamps(status, created_at_ms, None, None), "progress": 0}
        if queued is not None:
            wait = queued.position * run_seconds / max(queued.running, 1)
            fields["queue_position"] = queued.position
            fields["eta_seconds"] = math.ceil(wait + run_seconds)
        return fields
    fields = timestamps(status, created_at_ms, started_at_ms, completed_at_ms)
    if status == COMPLETED:
        fields["progress"] = 100
    return fields
