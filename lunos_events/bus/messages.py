"""Redis pub/sub: the doorbell that tells every process a stored event exists.

Channel: `Settings.events_channel` (default `lunos:events`), one for all accounts.
Message: a JSON object
    {"type": "video.pending" | "video.processing" | "video.completed" | "video.progress" | ...,
     "account_id": str, "seq": int, "operation_id": str, "app_id": str | null,
     "created_at_ms": int, "data": <the status object>}
with `type` first (see `type_prefix`). `seq` is the account's strictly increasing event number (the
SSE event id). The database holds the same event before it is published, so a subscriber that missed
a message replays it from the store. Seq 0: a transient event (`video.progress` that no webhook asked
for), not stored: handed on as it comes, never replayed.

Revoked keys: the hash of a revoked API key, as the whole message, on `revocations_channel`. The
event hubs end the streams opened with that key (or with a token it minted); a lost message only
delays that until their next check of the database.
"""

from __future__ import annotations

from typing import Any

from lunos_events.json_text import compact_json
from lunos_events.store.records import StoredEvent


def encode_event(event: StoredEvent) -> str:
    # `data` is already JSON text; splice it in rather than parse and re-serialise it. The type goes
    # first, so that a receiver can tell an event's type from the start of the message (`type_prefix`).
    head = compact_json(
        {
            "type": event.type,
            "account_id": event.account_id,
            "seq": event.seq,
            "operation_id": event.operation_id,
            "app_id": event.app_id,
            "created_at_ms": event.created_at_ms,
        }
    )
    return f'{head[:-1]},"data":{event.data}}}'


def revocations_channel(events_channel: str) -> str:
    return f"{events_channel}:revoked-keys"


def type_prefix(type: str) -> bytes:
    """How a message of an event of this type starts; tested without parsing the message."""
    return compact_json({"type": type})[:-1].encode() + b","


def event_from_message(raw: dict[str, Any]) -> StoredEvent:
    """The event of a message, parsed as JSON."""
    return StoredEvent(
        account_id=raw["account_id"],
        seq=int(raw["seq"]),
        operation_id=raw["operation_id"],
        app_id=raw.get("app_id"),
        type=raw["type"],
        data=compact_json(raw["data"]),
        created_at_ms=int(raw["created_at_ms"]),
    )
