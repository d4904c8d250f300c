"""What an operator does to accounts: create, change tier, top up with a note, manage keys.

Every change is written to the audit log; a balance change also to the ledger, in the same
transaction as the balance itself, so the ledger always explains the balance.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from lunos_events.bus.redis_bus import Bus
from lunos_events.errors import InvalidRequest, NotFound
from lunos_events.ids import api_key_display_prefix, now_ms
from lunos_events.money import CURRENCY, format_amount
from lunos_events.services import accounts, audit
from lunos_events.store.admin_models import BalanceLedger
from lunos_events.store.models import Account, ApiKey
from lunos_events.store.transactions import Store

log = logging.getLogger(__name__)

MAX_NOTE_CHARS = 500
MAX_IDEMPOTENCY_KEY_CHARS = 255
# SQLModel declares no __table__ (the SQLAlchemy mapping sets it).
_LEDGER = BalanceLedger.__table__  # type: ignore[attr-defined]


def account_view(row: Any, live_keys: int | None = None) -> dict[str, Any]:
    view = {
        "id": row.id,
        "balance": format_amount(row.balance_cents),
        "currency": CURRENCY,
        "tier": row.tier,
        "created_at_ms": row.created_at_ms,
    }
    if live_keys is not None:
        view["live_keys"] = live_keys
    return view


def check_tier(tier: Any, tiers: frozenset[str]) -> str:
    if not isinstance(tier, str) or tier not in tiers:
        raise InvalidRequest(f"'tier' must be one of: {', '.join(sorted(tiers))}")
    return tier


async def list_accounts(store: Store, limit: int, after: str | None) -> dict[str, Any]:
    """Accounts by id, with how many live keys each has; `next_after` pages on."""
    live = (
        select(func.count())
        .where(col(ApiKey.account_id) == col(Account.id), col(ApiKey.revoked_at_ms).is_(None))
        .scalar_subquery()
    )
    query = select(
        col(Account.id),
        col(Account.balance_cents),
        col(Account.tier),
        col(Account.created_at_ms),
        live.label("live_keys"),
    )
    if after:
        query = query.where(col(Account.id) > after)
    rows = await store.all(query.order_by(col(Account.id)).limit(limit + 1))
    page = rows[:limit]
    return {
        "object": "list",
        "data": [account_view(r, int(r.live_keys)) for r in page],
        "next_after": page[-1].id if len(rows) > limit else None,
    }


async def create_account(
    store: Store, actor: str, account_id: str, tier: str, balance_cents: int
) -> dict[str, Any]:
    row = await accounts.create_account(store, account_id, balance_cents, tier, audited_by=actor)
    return account_view(row, 0)


async def set_tier(store: Store, actor: str, account_id: str, tier: str) -> dict[str, Any]:
    async with store.transaction() as tx:
        before = await tx.first(select(col(Account.tier)).where(col(Account.id) == account_id))
        if before is None:
            raise NotFound(f"Account {account_id!r} not found")
        await tx.execute(update(Account).where(col(Account.id) == account_id).values(tier=tier))
        await audit.record(tx, actor, "account.tier", account_id, {"from": before.tier, "to": tier})
    return account_view(await accounts.get_account(store, account_id))


def check_note(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("'note' is required: say why the balance changes")
    if len(value) > MAX_NOTE_CHARS or "\x00" in value:
        raise InvalidRequest(f"'note' must be at most {MAX_NOTE_CHARS} characters")
    return value.strip()


def ledger_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "amount": format_amount(row.amount_cents),
        "balance_after": format_amount(row.balance_after_cents),
        "currency": CURRENCY,
        "note": row.note,
        "actor": row.actor,
        "created_at_ms": row.created_at_ms,
    }


async def _replayed(store: Store, account_id: str, key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    row = await store.first(
        select(BalanceLedger).where(
            col(BalanceLedger.account_id) == account_id, col(BalanceLedger.idempotency_key) == key
        )
    )
    return None if row is None else {**ledger_view(row), "replayed": True}


async def top_up(
    store: Store,
    actor: str,
    account_id: str,
    amount_cents: int,
    note: str,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Credit (or debit, with a negative amount) an account and record why, exactly once per key."""
    if amount_cents == 0:
        raise InvalidRequest("'amount' must not be zero")
    if (earlier := await _replayed(store, account_id, idempotency_key)) is not None:
        return earlier
    stamp = now_ms()
    try:
        async with store.transaction() as tx:
            balance = await accounts.credit(tx, account_id, amount_cents)
            entry: dict[str, Any] = {
                "account_id": account_id,
                "amount_cents": amount_cents,
                "balance_after_cents": balance,
                "note": note,
                "actor": actor,
                "idempotency_key": idempotency_key,
                "created_at_ms": stamp,
            }
            result = await tx.execute(_LEDGER.insert().values(**entry).returning(_LEDGER.c.id))
            entry_id = result.scalar_one()
            await audit.record(
                tx, actor, "balance.adjust", account_id, {"amount": format_amount(amount_cents), "note": note}
            )
    except IntegrityError:
        # The same key raced this request and won: answer what it did.
        if (earlier := await _replayed(store, account_id, idempotency_key)) is not None:
            return earlier
        raise
    return {**ledger_view(BalanceLedger(id=entry_id, **entry)), "replayed": False}


async def ledger(store: Store, account_id: str, limit: int) -> list[dict[str, Any]]:
    await accounts.get_account(store, account_id)
    rows = await store.all(
        select(BalanceLedger)
        .where(col(BalanceLedger.account_id) == account_id)
        .order_by(col(BalanceLedger.created_at_ms).desc(), col(BalanceLedger.id).desc())
        .limit(limit)
    )
    return [ledger_view(r) for r in rows]


async def create_key(store: Store, actor: str, account_id: str) -> dict[str, Any]:
    key = await accounts.create_api_key(store, account_id, audited_by=actor)
    return {"account_id": account_id, "key": key, "prefix": api_key_display_prefix(key)}


async def revoke_key(store: Store, bus: Bus, actor: str, account_id: str, prefix: str) -> dict[str, Any]:
    """Revoke the key and tell every API process, which end its streams at once."""
    revoked = await accounts.revoke_api_key(store, prefix, account_id, audited_by=actor)
    try:
        await bus.publish_revocation(revoked.key_hash)
    except (OSError, RedisError) as exc:
        # The API processes still find the revocation at their next key check in the database.
        log.warning("could not publish the revocation on Redis: %s", exc)
    return {"account_id": account_id, "prefix": revoked.prefix, "revoked": True}
