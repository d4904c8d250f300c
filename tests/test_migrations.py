"""Schema changes go through Alembic: the migrations build exactly the tables the models describe,
on SQLite and on PostgreSQL (LUNOS_TEST_DATABASE_URL / LUNOS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os

import anyio
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlmodel import SQLModel

from lunos_events.store.engine import create_engine
from lunos_events.store.migrate import (
    BASELINE_REVISION,
    alembic_config,
    current_revision,
    head_revision,
    upgrade_database,
)
from lunos_events.store.models import Account
from tests.conftest import fresh_test_database
from tests.processes import run, settings_env

pytestmark = pytest.mark.anyio

CORE_TABLES = {"accounts", "api_keys", "operations", "events", "alembic_version"}


def schema_drift(connection) -> list:
    return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


async def assert_migrations_match_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade_database(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert set(await conn.run_sync(lambda c: inspect(c).get_table_names())) >= CORE_TABLES
            # Every table, column, index and type of the models exists exactly as migrated.
            assert await conn.run_sync(schema_drift) == []
        await upgrade_database(engine)  # applying again is a no-op
        # Down to the baseline and up again with rows in place, an event referencing its account
        # among them (SQLite enforces foreign keys): downgrades keep the data.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO accounts (id, balance_cents, tier, event_seq, created_at_ms)"
                    " VALUES ('kept', 500, 'free', 1, 0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO events (account_id, seq, operation_id, type, data, created_at_ms)"
                    " VALUES ('kept', 1, 'video-op:kept:1', 'video.pending', '{}', 0)"
                )
            )
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), BASELINE_REVISION))
        await upgrade_database(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(select(Account.balance_cents))).scalar_one() == 500
        # Down to nothing and up again: downgrades work too.
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "base"))
        async with engine.connect() as conn:
            assert set(await conn.run_sync(lambda c: inspect(c).get_table_names())) <= {"alembic_version"}
        await upgrade_database(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_migrations_build_exactly_the_models(settings) -> None:
    await assert_migrations_match_models(settings.resolved_database_url())


async def test_postgres_migrations() -> None:
    """The PostgreSQL run: CI always provides a server (`.ci/run`), so there it fails instead of skipping."""
    url = os.environ.get("LUNOS_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("LUNOS_CI"):
            pytest.fail("LUNOS_TEST_POSTGRES_URL is not set in CI")
        pytest.skip("no PostgreSQL (set LUNOS_TEST_POSTGRES_URL)")
    await assert_migrations_match_models(fresh_test_database(url))


async def test_concurrent_start_ups_migrate_once(settings) -> None:
    engines = [create_engine(settings.resolved_database_url()) for _ in range(3)]
    try:
        async with anyio.create_task_group() as group:
            for engine in engines:
                group.start_soon(upgrade_database, engine)
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_database_made_before_migrations_is_adopted(settings) -> None:
    engine = create_engine(settings.resolved_database_url())
    try:
        # What `create_all` made before migrations existed: the core tables of the baseline revision,
        # with no record of a migration.
        await upgrade_database(engine, BASELINE_REVISION)
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE alembic_version"))
            await conn.execute(
                text(
                    "INSERT INTO accounts (id, balance_cents, tier, event_seq, created_at_ms)"
                    " VALUES ('old', 500, 'free', 0, 0)"
                )
            )
        await upgrade_database(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert (await conn.execute(select(Account.balance_cents))).scalar_one() == 500
    finally:
        await engine.dispose()


async def test_migrate_command(settings) -> None:
    env = settings_env(settings)
    first = run("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert f"migrated from empty to {head_revision()}" in first.stdout
    again = run("migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout


async def test_service_start_applies_migrations(service) -> None:
    # `dev`, `serve` and `worker` all open the runtime, which migrates before anything else runs.
    assert await current_revision(service.store.engine) == head_revision()


async def test_operations_the_provider_had_become_processing(settings) -> None:
    """0010: an operation with a provider name is `processing`, one without stays `pending`; down
    again, both are `pending` (what the release before it knew)."""
    engine = create_engine(settings.resolved_database_url())
    columns = (
        "id, account_id, model, provider_model, prompt, parameters, status, provider_operation,"
        " video_key, cost_cents, refunded, created_at_ms, updated_at_ms, deadline_at_ms"
    )
    try:
        await upgrade_database(engine, "0009")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO accounts (id, balance_cents, tier, event_seq, created_at_ms)"
                    " VALUES ('upgrader', 0, 'free', 0, 0)"
                )
            )
            for op_id, status, name in (
                ("started", "pending", "'operations/x/1'"),
                ("queued", "pending", "NULL"),
                ("done", "completed", "'operations/x/2'"),
            ):
                await conn.execute(
                    text(
                        f"INSERT INTO operations ({columns}) VALUES ('{op_id}', 'upgrader', 'm', 'm', 'p',"
                        f" '{{}}', '{status}', {name}, 'k-{op_id}', 0, false, 0, 0, 0)"
                    )
                )
        statuses = text("SELECT id, status FROM operations ORDER BY id")
        await upgrade_database(engine, "0010")
        async with engine.connect() as conn:
            upgraded = dict((await conn.execute(statuses)).all())
        assert upgraded == {"done": "completed", "queued": "pending", "started": "processing"}
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0009"))
        async with engine.connect() as conn:
            downgraded = dict((await conn.execute(statuses)).all())
        assert downgraded == {"done": "completed", "queued": "pending", "started": "pending"}
    finally:
        await engine.dispose()
