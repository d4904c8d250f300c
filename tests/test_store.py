"""The Store port on the configured backend (SQLite file, or PostgreSQL in CI's second run)."""

from __future__ import annotations

import asyncio
import multiprocessing

import anyio
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from lunos_events.services import accounts
from lunos_events.settings import Settings
from lunos_events.store.models import Account
from lunos_events.store.transactions import Store

pytestmark = pytest.mark.anyio


async def opened(settings: Settings) -> Store:
    store = Store.open(settings.resolved_database_url())
    await store.migrate()
    return store


async def balance(store: Store, account_id: str) -> int:
    return int(await store.scalar(select(Account.balance_cents).where(col(Account.id) == account_id)))


async def test_a_transaction_commits_at_the_end_of_its_block_and_rolls_back_if_it_raises(
    settings: Settings,
) -> None:
    store = await opened(settings)
    try:
        await accounts.create_account(store, "ledger", 100, "free")
        raise_me = RuntimeError("the body failed after writing")
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.execute(update(Account).values(balance_cents=0))
                raise raise_me
        assert await balance(store, "ledger") == 100
        async with store.transaction() as tx:
            await tx.execute(update(Account).values(balance_cents=7))
        assert await balance(store, "ledger") == 7
    finally:
        await store.dispose()


async def test_a_lone_statement_commits_by_itself_and_reads_see_each_commit(settings: Settings) -> None:
    store, other = await opened(settings), await opened(settings)
    try:
        await accounts.create_account(store, "alone", 100, "free")
        result = await store.execute(
            update(Account).where(col(Account.id) == "alone").values(balance_cents=5)
        )
        assert result.rowcount == 1
        # Another Store (another pool, as another process would have) sees it committed.
        assert await balance(other, "alone") == 5
        # Reads run in autocommit: nothing a read did holds back a later write, or hides it.
        assert await balance(store, "alone") == 5
        async with store.transaction() as tx:
            await tx.execute(update(Account).where(col(Account.id) == "alone").values(balance_cents=6))
        assert await balance(store, "alone") == 6
        assert await balance(other, "alone") == 6
    finally:
        await store.dispose()
        await other.dispose()


async def test_typed_reads_answer_none_for_what_does_not_exist(settings: Settings) -> None:
    store = await opened(settings)
    try:
        assert await store.operation("video-op:nobody:1") is None
        assert await store.operation_status("video-op:nobody:1", "nobody") is None
        assert await store.api_key_owner("0" * 64) is None
        await accounts.create_account(store, "owner", 0, "pro")
        key = await accounts.create_api_key(store, "owner")
        assert await accounts.authenticate(store, key) == accounts.Principal("owner", "pro")
    finally:
        await store.dispose()


async def _read_then_write(store: Store, account_id: str, times: int) -> None:
    for _ in range(times):
        async with store.transaction() as tx:
            # A read before the write: on SQLite a deferred transaction would fail here with
            # "database is locked" as soon as another writer got in between.
            await tx.first(select(Account.balance_cents).where(col(Account.id) == account_id))
            await asyncio.sleep(0.002)  # another process may commit meanwhile
            await tx.execute(
                update(Account)
                .where(col(Account.id) == account_id)
                .values(balance_cents=col(Account.balance_cents) + 1)
            )


def _writer_process(database_url: str, account_id: str, times: int) -> None:
    async def run() -> None:
        store = Store.open(database_url)
        try:
            await asyncio.gather(*(_read_then_write(store, account_id, times) for _ in range(8)))
        finally:
            await store.dispose()

    asyncio.run(run())


async def test_concurrent_read_then_write_transactions_of_several_processes_all_commit(
    settings: Settings,
) -> None:
    store = await opened(settings)
    try:
        await accounts.create_account(store, "counter", 0, "free")
        url = settings.resolved_database_url()
        context = multiprocessing.get_context("spawn")
        others = [context.Process(target=_writer_process, args=(url, "counter", 25)) for _ in range(2)]
        for process in others:
            process.start()
        await asyncio.gather(*(_read_then_write(store, "counter", 25) for _ in range(8)))
        with anyio.fail_after(120):
            while any(process.is_alive() for process in others):
                await anyio.sleep(0.05)
        assert [process.exitcode for process in others] == [0, 0]
        assert await balance(store, "counter") == 3 * 8 * 25
    finally:
        await store.dispose()
