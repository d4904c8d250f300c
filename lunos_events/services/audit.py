"""The audit log of operator actions: who did what, to what, when."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from lunos_events.ids import now_ms
from lunos_events.json_text import compact_json
from lunos_events.store.admin_models import AdminAudit
from lunos_events.store.transactions import Store, Writer

# SQLModel declares no __table__ (the SQLAlchemy mapping sets it).
_TABLE = AdminAudit.__table__  # type: ignore[attr-defined]


async def record(
    writer: Writer, actor: str, action: str, target: str | None, detail: dict[str, Any] | None = None
) -> None:
    """Log one action; give the action's own transaction as `writer` so both commit together."""
    await writer.execute(
        _TABLE.insert().values(
            at_ms=now_ms(),
            actor=actor,
            action=action,
            target=target,
            detail=compact_json(detail) if detail else None,
        )
    )


async def recent(store: Store, limit: int, *, target: str | None = None) -> list[dict[str, Any]]:
    """The newest entries first (optionally those about one target)."""
    query = select(AdminAudit).order_by(col(AdminAudit.id).desc()).limit(limit)
    if target is not None:
        query = query.where(col(AdminAudit.target) == target)
    rows = await store.all(query)
    return [
        {
            "id": r.id,
            "at_ms": r.at_ms,
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": json.loads(r.detail) if r.detail else None,
        }
        for r in rows
    ]
