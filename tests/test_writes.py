"""Write transactions (db/writes.py): one job's failure undoes only that job, and a batch that
cannot commit stores nothing and tells every caller; the same job bodies run on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing

import anyio
import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from lunos_events.store.engine import apply_sqlite_pragmas
from lunos_events.store.models import Account
from lunos_events.db.writes import CHECKPOINT_AFTER_CHANGES, COMMIT_AFTER_PASSES, SqliteWriter, Tx
from lunos_events.runtime import open_runtime
from tests.client_support import eventually

pytestmark = pytest.mark.anyio

_INSERT_ACCOUNT = insert(Account.__table__)


def add_accounts(tx: Tx, *ids: str) -> list[str]:
    for account_id in ids:
        tx.execute(
            _INSERT_ACCOUNT,
            id=account_id,
            balance_cents=0,
            tier="free",
            event_seq=0,
            webhooks_version=0,
            created_at_ms=1,
        )
    return list(ids)


async def stored_accounts(rt) -> set[str]:  # type: ignore[no-untyped-def]
    async with rt.engine.connect() as conn:
        return set((await conn.execute(select(Account.id))).scalars())


async def run_in_one_batch(writer, jobs: dict[str, object]) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Each job's result or error. They are queued in this order in one pass of the event loop, so
    the SQLite writer commits them as one batch."""

    async def run(fn) -> object:  # type: ignore[no-untyped-def]
        try:
            return await writer.run(fn)
        except Exception as error:
            return error

    outcomes = await asyncio.gather(*(run(fn) for fn in jobs.values()))
    return dict(zip(jobs, outcomes, strict=True))


async def test_a_failing_transaction_is_undone_alone(settings) -> None:
    async with open_runtime(settings) as rt:
        outcomes = await run_in_one_batch(
            rt.writes,
            {
                "before": lambda tx: add_accounts(tx, "b1", "b2"),
                # Its first insert succeeds, its second collides: the first must be undone too.
                "failing": lambda tx: add_accounts(tx, "f1", "b1"),
                "after": lambda tx: add_accounts(tx, "a1"),
            },
        )
        assert outcomes["before"] == ["b1", "b2"]
        assert outcomes["after"] == ["a1"]
        assert isinstance(outcomes["failing"], IntegrityError)
        assert await stored_accounts(rt) == {"b1", "b2", "a1"}


async def test_a_job_that_fails_before_writing_leaves_the_rest_of_its_batch_alone(settings) -> None:
    runs: list[str] = []

    def counted(name: str, *ids: str):  # type: ignore[no-untyped-def]
        def job(tx: Tx) -> list[str]:
            runs.append(name)
            return add_accounts(tx, *ids)

        return job

    def refused(tx: Tx) -> None:
        runs.append("refused")
        raise LookupError("refused before writing")

    async with open_runtime(settings) as rt:
        outcomes = await run_in_one_batch(
            rt.writes,
            {"before": counted("before", "c1"), "refused": refused, "after": counted("after", "c2")},
        )
        assert outcomes["before"] == ["c1"] and outcomes["after"] == ["c2"]
        assert isinstance(outcomes["refused"], LookupError)
        assert await stored_accounts(rt) == {"c1", "c2"}
    assert sorted(runs) == ["after", "before", "refused"]  # nothing was undone, so nothing ran twice


def accounts_database(tmp_path) -> str:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "w.db")
    with closing(sqlite3.connect(path, isolation_level=None)) as setup:
        apply_sqlite_pragmas(setup)
        setup.execute(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance_cents INT, tier TEXT,"
            " event_seq INT, webhooks_version INT, created_at_ms INT)"
        )
    return path


async def test_a_batch_that_cannot_commit_stores_nothing_and_fails_every_caller(tmp_path) -> None:
    path = accounts_database(tmp_path)

    def configure(conn: sqlite3.Connection) -> None:
        apply_sqlite_pragmas(conn)
        conn.execute("PRAGMA busy_timeout=100")  # give up on the lock quickly

    writer = SqliteWriter(path, configure)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        results = []

        async def run(account_id: str) -> None:
            try:
                results.append(await writer.run(add_accounts, account_id))
            except OperationalError as error:
                results.append(error)

        async with anyio.create_task_group() as tg:
            for account_id in ("x1", "x2", "x3"):
                tg.start_soon(run, account_id)
        assert len(results) == 3 and all(isinstance(r, OperationalError) for r in results)
        holder.execute("ROLLBACK")
        assert holder.execute("SELECT count(*) FROM accounts").fetchone() == (0,)

        # Once the lock is free, the writer goes on as before.
        assert await writer.run(add_accounts, "y1") == ["y1"]
        assert holder.execute("SELECT id FROM accounts").fetchall() == [("y1",)]
    finally:
        holder.close()
        writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        await writer.run(add_accounts, "z1")


async def test_the_event_loop_goes_on_while_another_process_holds_the_write_lock(tmp_path) -> None:
    path = accounts_database(tmp_path)
    writer = SqliteWriter(path, apply_sqlite_pragmas)  # may wait 30 s for the lock, but not in SQLite
    holder = sqlite3.connect(path, isolation_level=None)
    written: list[object] = []

    async def write() -> None:
        written.append(await writer.run(add_accounts, "w1"))

    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO accounts VALUES ('h1', 0, 'free', 0, 0, 1)")
        # Were the writer's BEGIN waiting inside SQLite, the loop would stand still until it gave
        # up 30 s later.
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                await anyio.sleep(0.3)
                assert written == []
                holder.execute("COMMIT")
        assert written == [["w1"]]
        assert holder.execute("SELECT id FROM accounts ORDER BY id").fetchall() == [("h1",), ("w1",)]
    finally:
        holder.close()
        writer.close()


async def test_checkpoints_bring_committed_rows_into_the_file_and_start_the_wal_over(tmp_path) -> None:
    path = accounts_database(tmp_path)
    writer = SqliteWriter(path, apply_sqlite_pragmas)
    ids = [f"c{i}" for i in range(CHECKPOINT_AFTER_CHANGES)]

    def rows_in_file() -> int | None:
        # immutable: the database file as it is on disk, without what is still only in the WAL. It
        # also takes no lock, so a read in the middle of a checkpoint can see a torn file.
        try:
            with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as file:
                return file.execute("SELECT count(*) FROM accounts").fetchone()[0]
        except sqlite3.DatabaseError:
            return None

    def wal_salt() -> bytes:
        # Bytes 16-23 of the WAL header: new ones each time the WAL starts over.
        with open(f"{path}-wal", "rb") as wal:
            return wal.read(24)[16:]

    try:
        await writer.run(add_accounts, "first")
        assert rows_in_file() == 0  # the writer's own connection never checkpoints
        salt = wal_salt()
        await writer.run(add_accounts, *ids)
        await eventually(lambda: rows_in_file() == len(ids) + 1)
        # The checkpoint thread also started the WAL over (and synced its header)...
        await eventually(lambda: wal_salt() != salt)
        restarted = wal_salt()
        # ...so the event loop's next commit only appends to it.
        await writer.run(add_accounts, "next")
        assert wal_salt() == restarted
    finally:
        writer.close()


async def test_a_caller_cancelled_while_its_batch_waits_for_the_lock_writes_nothing(tmp_path) -> None:
    path = accounts_database(tmp_path)
    writer = SqliteWriter(path, apply_sqlite_pragmas)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with anyio.move_on_after(0.2):  # the caller gives up (a client that went away)
            await writer.run(add_accounts, "gone")
        holder.execute("COMMIT")
        assert await writer.run(add_accounts, "kept") == ["kept"]
        assert holder.execute("SELECT id FROM accounts").fetchall() == [("kept",)]
    finally:
        holder.close()
        writer.close()


async def test_each_job_waits_for_the_lock_as_long_as_the_busy_timeout_from_its_own_start(tmp_path) -> None:
    path = accounts_database(tmp_path)

    def configure(conn: sqlite3.Connection) -> None:
        apply_sqlite_pragmas(conn)
        conn.execute("PRAGMA busy_timeout=1500")

    writer = SqliteWriter(path, configure)
    holder = sqlite3.connect(path, isolation_level=None)
    outcomes: dict[str, object] = {}

    async def write(account_id: str) -> None:
        try:
            outcomes[account_id] = await writer.run(add_accounts, account_id)
        except OperationalError as error:
            outcomes[account_id] = error

    try:
        holder.execute("BEGIN IMMEDIATE")
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, "early")
            await anyio.sleep(1.0)
            tg.start_soon(write, "late")
            await eventually(lambda: "early" in outcomes)
            holder.execute("COMMIT")  # "late" has waited about half a second of its 1.5 s
        assert isinstance(outcomes["early"], OperationalError)
        assert outcomes["late"] == ["late"]
    finally:
        holder.close()
        writer.close()


async def test_a_job_raising_stop_iteration_fails_alone(tmp_path) -> None:
    def stops(tx: Tx) -> None:
        raise StopIteration  # a future cannot take this exception as it is

    writer = SqliteWriter(accounts_database(tmp_path), apply_sqlite_pragmas)
    try:
        with anyio.fail_after(10):
            outcomes = await run_in_one_batch(
                writer, {"stops": stops, "after": lambda tx: add_accounts(tx, "s1")}
            )
        assert isinstance(outcomes["stops"], RuntimeError)
        assert outcomes["after"] == ["s1"]
    finally:
        writer.close()


async def test_jobs_queued_a_few_loop_passes_apart_share_one_commit(tmp_path) -> None:
    writer = SqliteWriter(accounts_database(tmp_path), apply_sqlite_pragmas)
    transactions: list[Tx] = []

    def job(tx: Tx, account_id: str) -> None:
        transactions.append(tx)  # one Tx per transaction
        add_accounts(tx, account_id)

    async def later(passes: int, account_id: str) -> None:
        for _ in range(passes):
            await asyncio.sleep(0)  # one pass of the event loop each
        await writer.run(job, account_id)

    try:
        async with anyio.create_task_group() as tg:
            for n in range(COMMIT_AFTER_PASSES):
                tg.start_soon(later, n, f"pass-{n}")
        assert len(transactions) == COMMIT_AFTER_PASSES and len(set(map(id, transactions))) == 1
        # Once it has committed, the next job starts a batch of its own.
        await writer.run(job, "alone")
        assert transactions[-1] is not transactions[0]
    finally:
        writer.close()
