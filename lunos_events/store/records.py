"""Plain records read from or about to be written to the store, shared by services, bus and streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The seq of an event that is not stored (a progress report): it has no SSE id and is never replayed.
TRANSIENT_SEQ = 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One status change as the event store holds it (see services/events.py), or a transient
    event shaped alike (seq `TRANSIENT_SEQ`)."""

    account_id: str
    seq: int
    operation_id: str
    app_id: str | None
    type: str
    data: str  # JSON text of the status object
    created_at_ms: int
    # How many webhook deliveries storing it created; None when read back (not known).
    deliveries: int | None = None

    @property
    def transient(self) -> bool:
        return self.seq == TRANSIENT_SEQ

    @classmethod
    def from_row(cls, row: Any) -> StoredEvent:
        m = row._mapping
        return cls(
            account_id=m["account_id"],
            seq=m["seq"],
            operation_id=m["operation_id"],
            app_id=m["app_id"],
            type=m["type"],
            data=m["data"],
            created_at_ms=m["created_at_ms"],
        )


@dataclass(frozen=True, slots=True)
class OperationStatus:
    """What a status poll reads of an operation."""

    status: str
    video_url: str | None
    error: str | None
    video_key: str
    error_code: str | None = None
    outcome: dict[str, Any] | None = None
    provider_model: str = ""
    created_at_ms: int = 0
    queued_at_ms: int | None = None
    started_at_ms: int | None = None
    completed_at_ms: int | None = None
