"""Write transactions: `await writes.run(fn, *args)` commits `fn(tx, *args)`, or nothing if it raises.

`fn` is plain synchronous code issuing SQLAlchemy Core statements through `tx.execute`, so one body
serves both backends:

- PostgreSQL (or an in-memory SQLite): it runs on the async engine through `run_sync`.
- The SQLite file: one thread owns the process's write connection and runs every queued
  transaction there with the stdlib driver (see compiled.py). Transactions that queue up while one
  batch commits go into the next batch and share one COMMIT (group commit); when one of them
  raises after changing rows, the batch is undone and run again with each in its own SAVEPOINT,
  so `fn` must be free of effects outside the transaction (it may run twice). Writers of this
  process thus wait in order instead of sleeping in SQLite's busy handler, which is what capped
  submits at a few dozen per second when each request's statements hopped through the async
  driver's threads while holding the file's single write lock.

A transaction's caller resumes only after its batch has committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from lunos_events.db.compiled import CompiledStatements, Rows, sqlalchemy_error

T = TypeVar("T")
log = logging.getLogger(__name__)

# Enough to amortise a commit; small enough that one batch never holds the write lock for long.
MAX_BATCH = 256


class Tx(Protocol):
    def execute(self, statement: Executable, **params: Any) -> Rows: ...

    def execute_many(self, statement: Executable, params: Iterable[Mapping[str, Any]]) -> int: ...


class Writes(Protocol):
    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def close(self) -> None: ...


class _EngineTx:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, statement: Executable, **params: Any) -> Rows:
        result = self._conn.execute(statement, params)
        rows = [tuple(r) for r in result] if result.returns_rows else []
        return Rows(rows, result.rowcount)

    def execute_many(self, statement: Executable, params: Iterable[Mapping[str, Any]]) -> int:
        return self._conn.execute(statement, list(params)).rowcount


class EngineWrites:
    """Transactions on the async engine (PostgreSQL, in-memory SQLite)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(lambda sync_conn: fn(_EngineTx(sync_conn), *args))

    def close(self) -> None:
        return None


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection, statements: CompiledStatements) -> None:
        self._conn = conn
        self._statements = statements

    def execute(self, statement: Executable, **params: Any) -> Rows:
        return self._statements.execute(self._conn, statement, params)

    def execute_many(self, statement: Executable, params: Iterable[Mapping[str, Any]]) -> int:
        return self._statements.execute_many(self._conn, statement, params)


_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, asyncio.Future[Any]]


class SqliteWriter:
    """The process's single SQLite write connection, on its own thread, with group commit."""

    def __init__(self, path: str, configure: Callable[[sqlite3.Connection], None]) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        configure(self._conn)
        self._statements = CompiledStatements()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the database writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, loop, future))
        return await future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            self._thread.join()
            self._conn.close()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            batch = [job]
            while len(batch) < MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._commit(batch)
                    return
                batch.append(job)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        tx = _SqliteTx(self._conn, self._statements)
        try:
            outcomes = self._transaction(tx, batch, isolated=False)
            if outcomes is None:
                # A job failed after writing and took the batch with it: run the batch again with
                # each job in its own SAVEPOINT, so that only the failing one is undone. That is
                # rare, so the common batch skips two statements per job.
                outcomes = self._transaction(tx, batch, isolated=True)
        except BaseException as error:  # BEGIN or COMMIT failed: nothing of the batch was stored
            log.warning("a batch of %d write transactions failed: %s", len(batch), error)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                error = sqlalchemy_error("BEGIN IMMEDIATE ... COMMIT", (), error)
            outcomes = [(False, error)] * len(batch)
        for (_, _, loop, future), (ok, value) in zip(batch, outcomes, strict=True):
            try:
                loop.call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # that caller's event loop has closed
                pass

    def _transaction(self, tx: _SqliteTx, batch: list[_Job], isolated: bool) -> list[tuple[bool, Any]] | None:
        """Run and commit the batch; None when a job that had written failed outside a SAVEPOINT."""
        # IMMEDIATE: take the write lock now (waiting on another process's writer in busy_timeout),
        # so no statement of the batch can fail for want of it half-way.
        self._conn.execute("BEGIN IMMEDIATE")
        outcomes: list[tuple[bool, Any]] = []
        for fn, args, _, _ in batch:
            if isolated:
                self._conn.execute("SAVEPOINT job")
            changes = self._conn.total_changes
            try:
                value = fn(tx, *args)
            except BaseException as error:
                if isolated:
                    self._conn.execute("ROLLBACK TO job")
                elif self._conn.total_changes != changes or not self._conn.in_transaction:
                    # It had written (or SQLite ended the transaction itself): undo the batch.
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    return [(False, error)] if len(batch) == 1 else None
                # Otherwise it failed before changing a row (a refused debit; a statement that fails
                # leaves no change behind), so there is nothing to undo.
                outcomes.append((False, error))
            else:
                outcomes.append((True, value))
            if isolated:
                self._conn.execute("RELEASE job")
        self._conn.execute("COMMIT")
        return outcomes


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def open_writes(
    engine: AsyncEngine, database_url: str, configure: Callable[[sqlite3.Connection], None]
) -> Writes:
    """The writer for this process: the SQLite writer thread on a database file, else the engine."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteWriter(url.database, configure)
    return EngineWrites(engine)
