"""The Store port: the one way the service reads and writes its database.

    async with store.transaction() as tx:      # commits at the end of the block, or rolls back
        await tx.execute(statement, {"name": value})
    row = await store.first(statement, name=value)   # a read outside any transaction

Implemented once, on SQLAlchemy 2's async Core: asyncpg on PostgreSQL, aiosqlite on SQLite. The only
difference between the two is in the engines (store/engine.py): SQLite gets a separate one-connection
write engine whose transactions begin IMMEDIATE, because SQLite serialises writers anyway.
Transaction bodies are plain async code; they must not call the network (a transaction holds row
locks on PostgreSQL and the whole file on SQLite).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import Executable, Row, Select, bindparam, select
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from lunos_events.store.engine import (
    DEFAULT_POOL_SIZE,
    create_engine,
    create_sqlite_write_engine,
    is_sqlite_file,
)
from lunos_events.store.migrate import upgrade_database
from lunos_events.store.models import Account, ApiKey, Operation
from lunos_events.store.records import OperationStatus

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
AnyRow = Row[*tuple[Any, ...]]
AnyResult = CursorResult[*tuple[Any, ...]]


class Writer(Protocol):
    """Where a write can go: an open transaction (Tx), or the Store itself for a statement that
    needs no transaction of its own (see Store.execute)."""

    async def execute(self, statement: Executable, params: Params = None) -> AnyResult: ...


class Tx:
    """An open transaction: statements, and the store's memo for values checked against a version
    read in the transaction (see services/webhook_fanout.py)."""

    __slots__ = ("conn", "memo")

    def __init__(self, conn: AsyncConnection, memo: dict[Any, Any]) -> None:
        self.conn = conn
        self.memo = memo

    async def execute(self, statement: Executable, params: Params = None) -> AnyResult:
        """Run a statement; a list of parameter sets runs it once per set (executemany)."""
        return await self.conn.execute(statement, params)

    async def first(self, statement: Executable, **params: Any) -> AnyRow | None:
        return (await self.conn.execute(statement, params)).first()


_API_KEY_OWNER = (
    select(col(Account.id), col(Account.tier))
    .join(ApiKey, col(ApiKey.account_id) == col(Account.id))
    .where(col(ApiKey.key_hash) == bindparam("key_hash"), col(ApiKey.revoked_at_ms).is_(None))
)
_OPERATION_STATUS = select(
    col(Operation.status),
    col(Operation.video_url),
    col(Operation.error),
    col(Operation.video_key),
    col(Operation.error_code),
    col(Operation.outcome),
    col(Operation.provider_model),
    col(Operation.created_at_ms),
    col(Operation.queued_at_ms),
    col(Operation.started_at_ms),
    col(Operation.completed_at_ms),
).where(col(Operation.id) == bindparam("operation_id"), col(Operation.account_id) == bindparam("account_id"))
_OPERATION_ROW = select(*Operation.__table__.columns).where(  # type: ignore[attr-defined]
    col(Operation.id) == bindparam("operation_id")
)


class Store:
    def __init__(self, engine: AsyncEngine, write_engine: AsyncEngine | None = None) -> None:
        self._writer = write_engine or engine
        # Without a writer of its own (PostgreSQL), a lone write statement may run in autocommit.
        self._autocommit_writes = write_engine is None
        # Reads run in autocommit, each statement its own snapshot: no BEGIN and ROLLBACK round
        # trips around a point read. (The same pool: `execution_options` makes a shallow copy.)
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._memo: dict[Any, Any] = {}

    @classmethod
    def open(cls, database_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Store:
        engine = create_engine(database_url, pool_size)
        if is_sqlite_file(make_url(database_url)):
            return cls(engine, create_sqlite_write_engine(database_url))
        return cls(engine)

    async def migrate(self) -> None:
        """Apply pending schema migrations (a no-op when there are none)."""
        await upgrade_database(self._writer)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._writer.pool is not self.engine.pool:
            await self._writer.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._writer.begin() as conn:
            yield Tx(conn, self._memo)

    async def execute(self, statement: Executable, params: Params = None) -> AnyResult:
        """One write statement, committed on its own: for writes that are atomic by themselves.

        On PostgreSQL it runs in autocommit, without the BEGIN and COMMIT round trips a
        transaction adds; SQLite's single writer runs it as a one-statement transaction.
        """
        if self._autocommit_writes:
            async with self.engine.connect() as conn:
                return await conn.execute(statement, params)
        async with self._writer.begin() as conn:
            return await conn.execute(statement, params)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for several reads in a row (each its own snapshot on SQLite)."""
        async with self.engine.connect() as conn:
            yield conn

    async def first(self, statement: Executable, **params: Any) -> AnyRow | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).first()

    async def all(self, statement: Executable, **params: Any) -> Sequence[AnyRow]:
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).all()

    async def scalar(self, statement: Select[Any], **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).scalar()

    # The reads of the hot paths, typed.

    async def api_key_owner(self, key_hash: str) -> tuple[str, str] | None:
        """(account id, tier) of a live API key."""
        row = await self.first(_API_KEY_OWNER, key_hash=key_hash)
        return None if row is None else (str(row[0]), str(row[1]))

    async def operation_status(self, operation_id: str, account_id: str) -> OperationStatus | None:
        row = await self.first(_OPERATION_STATUS, operation_id=operation_id, account_id=account_id)
        return None if row is None else OperationStatus(*row)

    async def operation(self, operation_id: str) -> Operation | None:
        """The whole operation row (what a tracking poll needs)."""
        row = await self.first(_OPERATION_ROW, operation_id=operation_id)
        # A stored row needs no validation (it costs ~70 µs on a table model).
        return None if row is None else Operation.model_construct(**row._asdict())
