"""The `lunos-events` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lunos_events.errors import LunosError
from lunos_events.logs import configure_logging
from lunos_events.money import format_amount, parse_amount
from lunos_events.settings import Settings

if TYPE_CHECKING:
    from lunos_events.store.transactions import Store

T = TypeVar("T")


def run_async(main: Awaitable[T]) -> T:
    sys.setswitchinterval(0.0002)
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]


@click.group()
def main() -> None:
    """lunos-events: a self-hosted video generation API."""


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _check_catalog(settings: Settings) -> None:
    """A bad model catalog stops start-up with its message (file, model, field), not a traceback."""
    from lunos_events.catalog import CatalogError
    from lunos_events.catalog_file import load_catalog

    try:
        load_catalog(settings.catalog)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default=None, help="Listen address (LUNOS_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (LUNOS_PORT, default 8787).")
def dev(host: str | None, port: int | None) -> None:
    """Run API, worker and an embedded Redis in one process, on SQLite and local storage."""
    from lunos_events.dev import (
        dev_metrics_settings,
        dev_settings_with_redis,
        dev_settings_with_stream_secret,
        dev_webhook_settings,
        serve_dev,
    )
    from lunos_events.dev_hardening import make_private, weak_key_reason

    chosen = _settings(host=host, port=port)
    _check_catalog(chosen)
    if chosen.dev_api_key and (reason := weak_key_reason(chosen.dev_api_key)):
        raise click.ClickException(reason)
    make_private(chosen.data_dir)
    settings, embedded = dev_settings_with_redis(
        dev_metrics_settings(dev_webhook_settings(dev_settings_with_stream_secret(chosen)))
    )
    configure_logging(settings.log_format)
    note = f"embedded redis-server at {embedded.display_url}" if embedded else settings.redis_url
    if embedded:
        embedded.start()
    try:
        run_async(serve_dev(settings, note or ""))
    finally:
        if embedded:
            embedded.stop()


@main.command()
@click.option("--host", default=None, help="Listen address (LUNOS_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (LUNOS_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the API server only (needs LUNOS_REDIS_URL and LUNOS_STREAM_TOKEN_SECRET)."""
    from lunos_events.serving import running_service, stop_signal, until_stopped
    from lunos_events.streams.tokens import signer_from_settings

    settings = _settings(host=host, port=port)
    configure_logging(settings.log_format)
    _check_catalog(settings)
    try:
        signer_from_settings(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None

    async def serve_api() -> None:
        stop = stop_signal()
        async with running_service(settings, worker=False):
            logging.getLogger("lunos_events").info("API listening on %s", settings.resolved_public_base_url())
            await until_stopped(stop)

    run_async(serve_api())


@main.command()
def worker() -> None:
    """Run an arq worker only (needs LUNOS_REDIS_URL)."""
    from lunos_events.serving import running_service, stop_signal, until_stopped

    settings = _settings()
    configure_logging(settings.log_format)
    _check_catalog(settings)

    async def work() -> None:
        stop = stop_signal()
        async with running_service(settings, api=False):
            logging.getLogger("lunos_events").info("worker started on queue %s", settings.queue_name)
            await until_stopped(stop)

    run_async(work())


@main.command()
@click.option(
    "--api",
    "api_replicas",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="`serve` replicas behind nginx.",
)
@click.option(
    "--workers", type=click.IntRange(1, 32), default=2, show_default=True, help="`worker` processes."
)
@click.option("--port", type=int, default=8787, show_default=True, help="nginx's port (loopback).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".lunos/stack"),
    show_default=True,
    help="Databases, logs and the nginx config (the database is removed on stop).",
)
@click.option(
    "--account", default="demo", show_default=True, help="An account to create, with a key printed."
)
def stack(api_replicas: int, workers: int, port: int, data_dir: Path, account: str) -> None:  # fmt: skip
    """Run the production shape on this machine: PostgreSQL, Redis, S3, N APIs behind nginx, M workers."""
    from lunos_events.stack.command import run_stack
    from lunos_events.stack.stack import StackOptions

    environment = {k: v for k, v in os.environ.items() if k.startswith("LUNOS_")}
    options = StackOptions(data_dir, api_replicas, workers, port, environment)
    try:
        run_stack(options, account)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def migrate() -> None:
    """Apply pending schema migrations to the database named by the settings."""
    from lunos_events.store.engine import create_engine
    from lunos_events.store.migrate import current_revision, head_revision, upgrade_database

    async def go() -> str | None:
        engine = create_engine(Settings().resolved_database_url())
        try:
            before = await current_revision(engine)
            await upgrade_database(engine)
            return before
        finally:
            await engine.dispose()

    before = run_async(go())
    head = head_revision()
    if before == head:
        click.echo(f"database schema is up to date (revision {head})")
    else:
        click.echo(f"database schema migrated from {before or 'empty'} to {head}")


def _operator(action: Callable[[Store], Awaitable[T]]) -> T:
    """Run one operator action against the database named by the settings."""

    from lunos_events.store.transactions import Store

    async def go() -> T:
        store = Store.open(Settings().resolved_database_url())
        try:
            await store.migrate()
            return await action(store)
        finally:
            await store.dispose()

    try:
        return run_async(go())
    except LunosError as exc:
        raise click.ClickException(exc.message) from None


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.group()
def users() -> None:
    """Manage accounts."""


@users.command("create")
@click.argument("user_id")
@click.option("--balance", default="0", help="Starting balance, e.g. 25.00")
@click.option("--tier", default="free", help="Rate-limit tier.")
def users_create(user_id: str, balance: str, tier: str) -> None:
    from lunos_events.services.accounts import create_account

    cents = _amount(balance)
    account = _operator(lambda store: create_account(store, user_id, cents, tier, audited_by="cli"))
    click.echo(
        f"created account {account.id} (tier {account.tier}, balance {format_amount(account.balance_cents)})"
    )


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.argument("user_id")
def keys_create(user_id: str) -> None:
    """Create an API key; it is printed once, alone on the last line."""
    from lunos_events.services.accounts import create_api_key

    key = _operator(lambda store: create_api_key(store, user_id, audited_by="cli"))
    click.echo(f"API key for {user_id} (store it now, it is not shown again):")
    click.echo(key)


@keys.command("revoke")
@click.argument("key_prefix")
def keys_revoke(key_prefix: str) -> None:
    """Revoke a key, named by its first characters (at least 8) or in full; its streams end."""
    from lunos_events.bus.redis_bus import announce_revocation
    from lunos_events.services.accounts import RevokedKey, revoke_api_key

    settings = Settings()

    async def revoke(store: Store) -> tuple[RevokedKey, bool]:
        revoked = await revoke_api_key(store, key_prefix, audited_by="cli")
        return revoked, await announce_revocation(settings, revoked.key_hash)

    revoked, announced = _operator(revoke)
    click.echo(f"revoked key {revoked.prefix}…")
    if announced:
        click.echo("its open event streams end now, on every API process")
    else:
        click.echo(
            f"its open event streams end within {settings.stream_key_check_seconds:g} s "
            "(LUNOS_STREAM_KEY_CHECK_SECONDS; no Redis to announce it on)"
        )


@main.group()
def balance() -> None:
    """Manage balances."""


@balance.command("add")
@click.argument("user_id")
@click.argument("amount")
@click.option("--note", default="added with the CLI", show_default=True, help="Why (kept in the ledger).")
def balance_add(user_id: str, amount: str, note: str) -> None:
    """Credit (or with a negative amount, debit) a balance; recorded in the ledger and audit log."""
    from lunos_events.services.operator import check_note, top_up

    cents = _amount(amount)
    entry = _operator(lambda store: top_up(store, "cli", user_id, cents, check_note(note)))
    click.echo(f"balance of {user_id}: {entry['balance_after']}")


# Client commands: they talk to a running server over HTTP (lunos_events.client).
from lunos_events.generate_command import generate  # noqa: E402

main.add_command(generate)
