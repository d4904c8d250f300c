"""Primary-key lookups on the request hot path: API key -> account, operation -> status.

On PostgreSQL they go through the async engine like every other query. On SQLite a query through
aiosqlite costs several hand-offs to its thread (about a millisecond under load) for a lookup that
itself takes ~10 µs, so there they run inline on the process's own read-only sqlite3 connection:
WAL lets it read while another connection commits, so a lookup never waits for a writer.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lunos_events.db.models import Account, ApiKey, Operation

API_KEY_OWNER = (
    select(Account.id, Account.tier)
    .join(ApiKey, ApiKey.account_id == Account.id)
    .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at_ms.is_(None))
)
OPERATION_STATUS = select(Operation.status, Operation.video_url, Operation.error, Operation.video_key).where(
    Operation.id == bindparam("operation_id"), Operation.account_id == bindparam("account_id")
)


class PointReads:
    def __init__(self, engine: AsyncEngine, database_url: str) -> None:
        self._engine = engine
        self._sqlite: sqlite3.Connection | None = None
        self._compiled: dict[int, tuple[str, tuple[str, ...]]] = {}
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            self._sqlite = sqlite3.connect(
                f"file:{url.database}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            self._sqlite.execute("PRAGMA busy_timeout=5000")

    async def one(self, statement: Select[Any], **params: Any) -> tuple[Any, ...] | None:
        """The first row of `statement` (bound by name), as a tuple; None when there is none."""
        if self._sqlite is None:
            async with self._engine.connect() as conn:
                row = (await conn.execute(statement, params)).first()
            return tuple(row) if row is not None else None
        sql, names = self._sqlite_sql(statement)
        return self._sqlite.execute(sql, [params[name] for name in names]).fetchone()

    def _sqlite_sql(self, statement: Select[Any]) -> tuple[str, tuple[str, ...]]:
        compiled = self._compiled.get(id(statement))
        if compiled is None:
            sql = statement.compile(dialect=sqlite_dialect.dialect())
            compiled = self._compiled[id(statement)] = (sql.string, tuple(sql.positiontup or ()))
        return compiled

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
