"""Primary-key lookups on hot paths: API key -> account, operation -> status, a tracked operation.

On PostgreSQL they go through the async engine like every other query. On SQLite a query through
aiosqlite costs several hand-offs to its thread (about a millisecond under load) for a lookup that
itself takes ~10 µs, so there they run inline on the process's own read-only sqlite3 connection:
WAL lets it read while another connection commits. It never waits for a lock (that would stall the
event loop): if SQLite ever reports the file busy, the lookup takes the async path instead.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from lunos_events.db.compiled import CompiledStatements
from lunos_events.store.models import Account, ApiKey, Operation

API_KEY_OWNER = (
    select(Account.id, Account.tier)
    .join(ApiKey, ApiKey.account_id == Account.id)
    .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at_ms.is_(None))
)
OPERATION_STATUS = select(Operation.status, Operation.video_url, Operation.error, Operation.video_key).where(
    Operation.id == bindparam("operation_id"), Operation.account_id == bindparam("account_id")
)
OPERATION_ROW = select(*Operation.__table__.columns).where(Operation.id == bindparam("operation_id"))


class PointReads:
    def __init__(self, engine: AsyncEngine, database_url: str) -> None:
        self._engine = engine
        self._sqlite: sqlite3.Connection | None = None
        self._statements = CompiledStatements()
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            self._sqlite = sqlite3.connect(
                f"file:{url.database}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            self._sqlite.execute("PRAGMA busy_timeout = 0")

    async def one(self, statement: Select[Any], **params: Any) -> tuple[Any, ...] | None:
        """The first row of `statement` (bound by name), as a tuple; None when there is none."""
        if self._sqlite is not None:
            try:
                # Every row is fetched, so no read snapshot stays open after it.
                return self._statements.execute(self._sqlite, statement, params).first()
            except OperationalError:
                pass  # busy (a checkpoint, a schema change): the async engine waits for it instead
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement, params)).first()
        return tuple(row) if row is not None else None

    async def operation(self, operation_id: str) -> Operation | None:
        """The whole operation row (what a tracking poll needs)."""
        row = await self.one(OPERATION_ROW, operation_id=operation_id)
        if row is None:
            return None
        # A stored row needs no validation (it costs ~70 µs a poll on a table model).
        return Operation.model_construct(**dict(zip(OPERATION_ROW.selected_columns.keys(), row, strict=True)))

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
