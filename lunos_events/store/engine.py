"""Database engine construction (SQLite on embedded defaults, PostgreSQL when scaled out)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lunos_events.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)


def create_engine(database_url: str) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        apply_sqlite_pragmas(dbapi_connection)

    return engine


def apply_sqlite_pragmas(dbapi_connection) -> None:
    """Every SQLite connection of the service (the engine's, the writer's) is set up so."""
    # WAL lets readers proceed while a writer commits; API and worker processes share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def ensure_schema(engine: AsyncEngine) -> None:
    """Apply pending migrations (schema changes go through Alembic, never `create_all`)."""
    from lunos_events.store.migrate import upgrade_database

    await upgrade_database(engine)
