"""SSE frames (framed by sse-starlette), encoded once per event and shared by every stream."""

from __future__ import annotations

from sse_starlette import ServerSentEvent

from lunos_events.json_text import compact_json
from lunos_events.services.events import StoredEvent
from lunos_events.store.models import DELETED, TERMINAL_STATUSES

_EVENT_TYPE_PREFIX = "video."
_FINAL_STATUSES = frozenset({*TERMINAL_STATUSES, DELETED})


def event_frame(event: StoredEvent) -> bytes:
    """`id:` the account's seq, `event:` the type, `data:` the status object as stored. A transient
    event has no `id:`, so EventSource keeps the Last-Event-ID of the last stored one."""
    event_id = None if event.transient else str(event.seq)
    return ServerSentEvent(data=event.data, event=event.type, id=event_id).encode()


# A comment line: EventSource ignores it; proxies and load balancers see a live connection.
HEARTBEAT = ServerSentEvent(comment="heartbeat").encode()


RESET_EVENT = "stream.reset"


def reset_frame(last_event_id: int, pruned_through: int) -> bytes:
    """Tells a resuming client that events after its Last-Event-ID were removed by retention.

    No `id:` of its own, so EventSource keeps the client's Last-Event-ID until a real event comes.
    """
    data = compact_json(
        {
            "reason": "history_pruned",
            "last_event_id": last_event_id,
            "pruned_through": pruned_through,
            "message": "Events after your Last-Event-ID are no longer kept; what follows is each "
            "operation's current state, then live events.",
        }
    )
    return ServerSentEvent(data=data, event=RESET_EVENT).encode()


def retry_frame(retry_ms: int) -> bytes:
    """Tells EventSource how long to wait before reconnecting; carries no event."""
    return ServerSentEvent(retry=retry_ms).encode()


def is_terminal(event: StoredEvent) -> bool:
    """An operation's last status event: it ended (a deletion, after that, is final too)."""
    return event.type.removeprefix(_EVENT_TYPE_PREFIX) in _FINAL_STATUSES
