"""Write transactions: `await writes.run(fn, *args)` commits `fn(tx, *args)`, or nothing if it raises.

`fn` is plain synchronous code issuing SQLAlchemy Core statements through `tx.execute`, so one body
serves both backends:

- PostgreSQL (or an in-memory SQLite): it runs on the async engine through `run_sync`.
- The SQLite file: the process's one write connection runs every queued transaction on the event
  loop itself, with the stdlib driver (see compiled.py). Transactions queued in the same pass of
  the loop, or while the file's write lock was held elsewhere, go into one batch and share one
  COMMIT (group commit); when one of them raises after changing rows, the batch is undone and run
  again with each in its own SAVEPOINT, so `fn` must be free of effects outside the transaction
  (it may run twice).

The loop never waits for the file's lock: BEGIN IMMEDIATE does not block (busy timeout 0), and while
another process holds the lock the batch is tried again on a timer; a job fails once it has waited
as long as the connection's configured busy timeout. A commit only appends to the WAL
(synchronous=NORMAL). Checkpoints, which sync the disk, run on a thread with a connection of their
own, and so does the write that starts the WAL over after one (it syncs the WAL's new header). A
writer thread did this before: it had to take the GIL back from the event loop after every
statement, and those hand-offs cost more than the statements themselves. A job whose caller was
cancelled before its batch began is not run.

A transaction's caller resumes only after its batch has committed.
"""

from __future__ import annotations

import asyncio
import logging
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
    # Kept by the writer from one transaction to the next, for values that a transaction checks
    # against a version it reads from the database (see webhooks/fanout.py). Only the writer's
    # transactions touch it; the versions come from rows that its writes lock.
    cache: dict[Any, Any]

    def execute(self, statement: Executable, **params: Any) -> Rows: ...

    def execute_many(self, statement: Executable, params: Iterable[Mapping[str, Any]]) -> int: ...


class Writes(Protocol):
    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def close(self) -> None: ...


class _EngineTx:
    def __init__(self, conn: Connection, cache: dict[Any, Any]) -> None:
        self._conn = conn
        self.cache = cache

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
        self._cache: dict[Any, Any] = {}

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(lambda sync_conn: fn(_EngineTx(sync_conn, self._cache), *args))

    def close(self) -> None:
        return None


class _SqliteTx:
    def __init__(
        self, conn: sqlite3.Connection, statements: CompiledStatements, cache: dict[Any, Any]
    ) -> None:
        self._conn = conn
        self._statements = statements
        self.cache = cache

    def execute(self, statement: Executable, **params: Any) -> Rows:
        return self._statements.execute(self._conn, statement, params)

    def execute_many(self, statement: Executable, params: Iterable[Mapping[str, Any]]) -> int:
        return self._statements.execute_many(self._conn, statement, params)


_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], float]  # ..., queued at (loop time)

# Waits between tries of a write lock held by another process: short at first, as its holder's
# transactions are.
_FIRST_RETRY_SECONDS = 0.001
_MAX_RETRY_SECONDS = 0.02
# Rows changed since the last checkpoint that make the next one due. SQLite's own automatic
# checkpoint waits for 1,000 pages of WAL. A submit changes five rows and dirties a dozen or so
# pages, fewer per submit in a shared batch: this lets the WAL grow to between ~500 and ~3,000
# pages between checkpoints.
CHECKPOINT_AFTER_CHANGES = 1000
# A batch commits this many passes of the event loop after its first job was queued, so that the
# jobs of requests a few steps behind join it. The commit is a submit's biggest single cost (two
# `pwrite` calls per page of WAL: ~25 per transaction alone, ~7 per job in batches of five, ~4 in
# batches of ten), and a pass of an idle loop is a few µs. With 4 passes a submit took ~9% less CPU
# and its latency did not grow (bench/README.md); waiting on a timer instead left the loop idle.
COMMIT_AFTER_PASSES = 4


class SqliteWriter:
    """The process's single SQLite write connection, driven by the event loop, with group commit."""

    def __init__(self, path: str, configure: Callable[[sqlite3.Connection], None]) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        configure(self._conn)
        # How long a job may wait for the write lock: what `configure` set as the busy timeout.
        # The connection itself must never wait, or the event loop would wait with it.
        (busy_ms,) = self._conn.execute("PRAGMA busy_timeout").fetchone()
        self._lock_timeout = busy_ms / 1000
        self._conn.execute("PRAGMA busy_timeout = 0")
        self._conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpoint thread's job
        self._statements = CompiledStatements()
        self._cache: dict[Any, Any] = {}
        self._queued: list[_Job] = []
        self._flush: asyncio.Handle | None = None  # a flush is due, or waits for the lock
        self._passes_left = 0  # before the due flush commits
        self._retry_seconds = _FIRST_RETRY_SECONDS
        # The next batch lost a job after it had written: it runs with a SAVEPOINT per job.
        self._isolate_next = False
        self._checkpoints = _Checkpoints(path, configure)
        self._changes_since_checkpoint = 0
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the database writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queued.append((fn, args, future, loop.time()))
        if self._flush is None:
            # After the callbacks already due in this pass and a few more passes (see
            # COMMIT_AFTER_PASSES), so that theirs join the batch.
            self._passes_left = COMMIT_AFTER_PASSES
            self._flush = loop.call_soon(self._commit_queued, loop)
        return await future

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._queued:  # shutting down: commit what is queued, waiting for the lock if need be
            self._conn.execute(f"PRAGMA busy_timeout = {int(self._lock_timeout * 1000)}")
        while self._queued:
            try:
                self._commit_next_batch()
            except _LockHeld as held:
                self._fail_jobs(min(len(self._queued), MAX_BATCH), held.error)
        self._checkpoints.close()
        self._conn.close()

    def _commit_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._passes_left > 0 and len(self._queued) < MAX_BATCH:
            self._passes_left -= 1
            self._flush = loop.call_soon(self._commit_queued, loop)
            return
        self._flush = None
        self._passes_left = 0  # what is left queued after this batch goes at once
        retry_in: float | None = None
        try:
            self._commit_next_batch()
        except _LockHeld as held:
            # Each job waits for the lock as long as the busy timeout would have let it wait.
            waited_too_long = loop.time() - self._lock_timeout
            expired = next((i for i, job in enumerate(self._queued) if job[3] > waited_too_long), None)
            self._fail_jobs(len(self._queued) if expired is None else expired, held.error)
            retry_in = self._retry_seconds
            self._retry_seconds = min(retry_in * 2, _MAX_RETRY_SECONDS)
        else:
            self._retry_seconds = _FIRST_RETRY_SECONDS
            if self._changes_since_checkpoint >= CHECKPOINT_AFTER_CHANGES:
                self._changes_since_checkpoint = 0
                self._checkpoints.request()
        finally:
            # Even when something unforeseen raised: the jobs behind it must not wait for a new one.
            if self._queued and self._flush is None and not self._closed:
                if retry_in is None:
                    self._flush = loop.call_soon(self._commit_queued, loop)
                else:
                    self._flush = loop.call_later(retry_in, self._commit_queued, loop)

    def _commit_next_batch(self) -> None:
        """Commit the next batch of queued jobs and settle their callers; _LockHeld when the
        file's write lock is taken (the batch stays queued)."""
        batch = self._queued[:MAX_BATCH]
        live = [job for job in batch if not job[2].done()]  # a cancelled caller's job is not run
        changes = self._conn.total_changes
        outcomes: list[tuple[bool, Any]] | None = []
        try:
            if live:
                outcomes = None if self._isolate_next else self._transaction(live, isolated=False)
            if outcomes is None:
                # A job failed after writing and took the batch with it: run the batch again with
                # each job in its own SAVEPOINT, so that only the failing one is undone. That is
                # rare, so the common batch skips two statements per job. (Remembered, so that a
                # lock taken meanwhile does not make the batch run a third time without them.)
                self._isolate_next = True
                outcomes = self._transaction(live, isolated=True)
        except _LockHeld:
            raise
        except BaseException as error:  # BEGIN or COMMIT failed: nothing of the batch was stored
            self._rollback()
            self._isolate_next = False
            self._fail_jobs(len(batch), error)
            return
        self._isolate_next = False
        del self._queued[: len(batch)]
        # total_changes is a C int that wraps around: the difference is taken modulo 2**32.
        self._changes_since_checkpoint += (self._conn.total_changes - changes) & 0xFFFFFFFF
        for (_, _, future, _), (ok, value) in zip(live, outcomes, strict=True):
            _settle(future, ok, value)

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as error:
                log.error("rolling back a failed batch failed: %s", error)

    def _fail_jobs(self, count: int, error: BaseException) -> None:
        """The first `count` queued jobs cannot be stored: each of their callers gets the error."""
        if count == 0:
            return
        failed = self._queued[:count]
        del self._queued[:count]
        log.warning("%d write transactions failed: %s", count, error)
        if isinstance(error, sqlite3.Error):
            error = sqlalchemy_error("BEGIN IMMEDIATE ... COMMIT", (), error)
        for _, _, future, _ in failed:
            _settle(future, False, error)

    def _transaction(self, batch: list[_Job], isolated: bool) -> list[tuple[bool, Any]] | None:
        """Run and commit the batch; None when a job that had written failed outside a SAVEPOINT
        (the transaction is then rolled back)."""
        try:
            # IMMEDIATE: take the write lock now, so no statement of the batch can fail for want of
            # it half-way.
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                raise _LockHeld(error) from None
            raise
        tx = _SqliteTx(self._conn, self._statements, self._cache)
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


class _LockHeld(Exception):
    def __init__(self, error: sqlite3.OperationalError) -> None:
        self.error = error


class _Checkpoints:
    """Checkpoints the WAL on its own thread and connection when asked, one at a time.

    PASSIVE: it copies what no reader still needs and never holds up readers or the writer. After a
    complete one it also starts the WAL over (see `_restart_wal`).
    """

    def __init__(self, path: str, configure: Callable[[sqlite3.Connection], None]) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        configure(self._conn)
        self._due = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="sqlite-checkpoints", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._due.set()

    def close(self) -> None:
        self._closed = True
        self._due.set()
        self._thread.join()
        self._conn.close()

    def _serve(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._closed:
                return
            try:
                busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if not busy and 0 < frames == copied:
                    self._restart_wal()
            except sqlite3.Error as error:
                log.warning("WAL checkpoint failed: %s", error)

    def _restart_wal(self) -> None:
        """Start the WAL over from here, with a write that changes nothing.

        The first write after a complete checkpoint starts the WAL over and syncs its new header.
        Made here, that sync does not fall to the event loop's next commit.
        """
        self._conn.execute("BEGIN IMMEDIATE")  # this thread may wait for the lock
        try:
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
            self._conn.execute(f"PRAGMA user_version = {int(version)}")
            self._conn.execute("COMMIT")
        finally:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # its caller was cancelled
        return
    try:
        if ok:
            future.set_result(value)
        elif isinstance(value, StopIteration):  # a future refuses it
            future.set_exception(RuntimeError(f"a write transaction raised {value!r}"))
        else:
            future.set_exception(value)
    except RuntimeError:  # that caller's event loop has closed
        pass


def open_writes(
    engine: AsyncEngine, database_url: str, configure: Callable[[sqlite3.Connection], None]
) -> Writes:
    """The writer for this process: the loop-driven SQLite writer on a database file, else the engine."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return SqliteWriter(url.database, configure)
    return EngineWrites(engine)
