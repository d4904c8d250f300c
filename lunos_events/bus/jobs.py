"""Names and ids of the arq jobs, shared by whoever enqueues them (API, worker) and the worker that
runs them. Jobs with a fixed id are queued at most once at a time: arq's `enqueue_job` refuses an id
that is already queued, running or holding a result."""

from __future__ import annotations

from lunos_events.ids import now_ms

TRACK_OPERATION = "track_operation"
WATCH_QUEUED = "watch_queued"
DRAIN_WEBHOOKS = "drain_webhooks"
DELIVER_WEBHOOK = "deliver_webhook"

# Every release of an event with webhook deliveries in the same window enqueues the same drain job
# (see webhooks/drain.py).
DRAIN_WINDOW_MS = 200


def tracking_job_id(operation_id: str) -> str:
    # One job id per operation: enqueueing an operation that is already tracked is a no-op.
    return f"track:{operation_id}"


def watch_job_id(operation_id: str) -> str:
    # A queued operation's one deadline watch (see worker/tracking.py).
    return f"watch:{operation_id}"


def drain_window(at_ms: int | None = None) -> int:
    return (now_ms() if at_ms is None else at_ms) // DRAIN_WINDOW_MS


def drain_job_id(window: int) -> str:
    return f"webhook-drain:{window}"


def delivery_job_id(delivery_id: str, round_: int) -> str:
    return f"webhook:{delivery_id}:{round_}"
