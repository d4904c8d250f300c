"""Database engines: SQLite on the embedded default, PostgreSQL in production (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lunos_events.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)

# Connections per process to PostgreSQL (LUNOS_DATABASE_POOL_SIZE): opened as needed, kept.
DEFAULT_POOL_SIZE = 40


def is_sqlite_file(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and bool(url.database) and url.database != ":memory:"


def create_engine(database_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    """The engine reads (and, on PostgreSQL, writes) go through."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # Enough connections for an API process's concurrent requests; each holds one only for the
        # length of a statement or a short transaction. No overflow: a connection opened beyond the
        # pool is closed again on return, and connecting costs far more than the statement did. No
        # pre-ping (on asyncpg it is BEGIN, a query and ROLLBACK on every checkout): a connection
        # found dead invalidates the whole pool, so after a PostgreSQL restart only the requests
        # in flight at that moment fail.
        return create_async_engine(url, pool_size=pool_size, max_overflow=0)
    if is_sqlite_file(url):
        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    return engine


def create_sqlite_write_engine(database_url: str) -> AsyncEngine:
    """SQLite's writer: one connection per process, and every transaction begins IMMEDIATE.

    SQLite lets one writer in at a time, so more connections would only queue on the file's lock;
    here transactions queue on the pool instead, without holding a thread. IMMEDIATE takes the write
    lock at BEGIN, so a transaction that reads before it writes can never fail half-way for want of
    it (a deferred one would get SQLITE_BUSY at once, whatever the busy timeout). This is the
    recipe of SQLAlchemy's aiosqlite documentation (driver BEGIN off, our own BEGIN emitted).
    """
    engine = create_async_engine(
        make_url(database_url), connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60
    )
    event.listen(engine.sync_engine, "connect", _on_sqlite_write_connect)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    apply_sqlite_pragmas(dbapi_connection)


def _on_sqlite_write_connect(dbapi_connection: Any, _record: Any) -> None:
    apply_sqlite_pragmas(dbapi_connection)
    dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own


def _begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def apply_sqlite_pragmas(dbapi_connection: Any) -> None:
    """Every SQLite connection of the service is set up so."""
    # WAL lets readers proceed while a writer commits; API and worker processes share the file.
    # synchronous=NORMAL: a commit appends to the WAL without a sync (durable at checkpoints).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
