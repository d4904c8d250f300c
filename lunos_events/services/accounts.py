"""Accounts, API keys and balances."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from lunos_events.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from lunos_events.ids import (
    ACCOUNT_ID_PATTERN,
    API_KEY_DISPLAY_CHARS,
    api_key_display_prefix,
    api_key_hash,
    new_api_key,
    now_ms,
)
from lunos_events.money import format_amount
from lunos_events.services import audit
from lunos_events.store.models import Account, ApiKey
from lunos_events.store.transactions import Store, Tx


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, and the hash of the key it used (what stream tokens are tied to)."""

    account_id: str
    tier: str
    key_hash: str = field(default="", compare=False)


async def create_account(
    store: Store, account_id: str, balance_cents: int, tier: str, *, audited_by: str | None = None
) -> Account:
    """Create an account; with `audited_by`, its audit row commits in the same transaction."""
    if not ACCOUNT_ID_PATTERN.match(account_id):
        raise InvalidRequest(
            "Account ids are 1-64 characters: letters, digits, '_', '.', '-' (not starting with a symbol)"
        )
    if balance_cents < 0:
        raise InvalidRequest("Balance must not be negative")
    account = Account(id=account_id, balance_cents=balance_cents, tier=tier, created_at_ms=now_ms())
    try:
        async with store.transaction() as conn:
            await conn.execute(
                # SQLModel declares no __table__ (the SQLAlchemy mapping sets it).
                Account.__table__.insert().values(**account.model_dump())  # type: ignore[attr-defined]
            )
            if audited_by is not None:
                detail = {"tier": tier, "balance": format_amount(balance_cents)}
                await audit.record(conn, audited_by, "account.create", account_id, detail)
    except IntegrityError:
        raise Conflict(f"Account {account_id!r} already exists") from None
    return account


async def get_account(store: Store, account_id: str) -> Account:
    async with store.reading() as conn:
        row = (await conn.execute(select(Account).where(col(Account.id) == account_id))).first()
    if row is None:
        raise NotFound(f"Account {account_id!r} not found")
    return Account.model_validate(row._mapping)


async def create_api_key(
    store: Store, account_id: str, key: str | None = None, *, audited_by: str | None = None
) -> str:
    """Create a key for the account and return it; only its hash is stored, so it is shown once.

    With `audited_by`, its audit row (naming the key's displayed prefix) commits with it.
    """
    await get_account(store, account_id)
    key = key or new_api_key()
    row = ApiKey(
        key_hash=api_key_hash(key),
        prefix=api_key_display_prefix(key),
        account_id=account_id,
        created_at_ms=now_ms(),
    )
    try:
        async with store.transaction() as conn:
            await conn.execute(
                # SQLModel declares no __table__ (the SQLAlchemy mapping sets it).
                ApiKey.__table__.insert().values(**row.model_dump())  # type: ignore[attr-defined]
            )
            if audited_by is not None:
                await audit.record(conn, audited_by, "key.create", account_id, {"prefix": row.prefix})
    except IntegrityError:
        raise Conflict("That API key already exists") from None
    return key


async def key_exists(store: Store, key: str, account_id: str) -> bool:
    async with store.reading() as conn:
        row = (
            await conn.execute(
                select(col(ApiKey.account_id)).where(
                    col(ApiKey.key_hash) == api_key_hash(key), col(ApiKey.revoked_at_ms).is_(None)
                )
            )
        ).first()
    return row is not None and row.account_id == account_id


@dataclass(frozen=True)
class RevokedKey:
    prefix: str
    key_hash: str


async def revoke_api_key(
    store: Store, key_or_prefix: str, account_id: str | None = None, *, audited_by: str | None = None
) -> RevokedKey:
    """Revoke one live key, named by its full text or by its displayed prefix; returns it with its hash.

    With `account_id`, only that account's keys can match; with `audited_by`, the audit row
    commits with the revocation.
    """
    if len(key_or_prefix) > API_KEY_DISPLAY_CHARS:
        match = col(ApiKey.key_hash) == api_key_hash(key_or_prefix)
    elif len(key_or_prefix) >= 8:
        match = col(ApiKey.prefix).startswith(key_or_prefix, autoescape=True)
    else:
        raise InvalidRequest("Give the full key or at least 8 characters of its prefix")
    if account_id is not None:
        match = match & (col(ApiKey.account_id) == account_id)
    async with store.transaction() as conn:
        rows = (
            await conn.execute(
                select(col(ApiKey.key_hash), col(ApiKey.prefix), col(ApiKey.account_id)).where(
                    match, col(ApiKey.revoked_at_ms).is_(None)
                )
            )
        ).all()
        if not rows:
            raise NotFound("No live API key matches")
        if len(rows) > 1:
            raise Conflict("Several live keys match that prefix; give the full key")
        await conn.execute(
            update(ApiKey).where(col(ApiKey.key_hash) == rows[0].key_hash).values(revoked_at_ms=now_ms())
        )
        if audited_by is not None:
            owner = rows[0].account_id
            await audit.record(conn, audited_by, "key.revoke", owner, {"prefix": rows[0].prefix})
    return RevokedKey(prefix=str(rows[0].prefix), key_hash=str(rows[0].key_hash))


async def live_keys(store: Store, key_hashes: Collection[str]) -> set[str]:
    """Those of `key_hashes` that belong to a key not revoked."""
    hashes = list(key_hashes)
    live: set[str] = set()
    for start in range(0, len(hashes), _LIVE_KEYS_BATCH):
        rows = await store.all(
            select(col(ApiKey.key_hash)).where(
                col(ApiKey.key_hash).in_(hashes[start : start + _LIVE_KEYS_BATCH]),
                col(ApiKey.revoked_at_ms).is_(None),
            )
        )
        live.update(row.key_hash for row in rows)
    return live


_LIVE_KEYS_BATCH = 500


async def add_balance(store: Store, account_id: str, amount_cents: int) -> int:
    """Credit (or, with a negative amount, debit) an account; returns the new balance."""
    async with store.transaction() as tx:
        return await credit(tx, account_id, amount_cents)


async def credit(tx: Tx, account_id: str, amount_cents: int) -> int:
    """Within `tx`: add to (or take from) a balance, never below zero; returns the new balance."""
    result = await tx.execute(
        update(Account)
        .where(col(Account.id) == account_id, col(Account.balance_cents) + amount_cents >= 0)
        .values(balance_cents=col(Account.balance_cents) + amount_cents)
        .returning(col(Account.balance_cents))
    )
    row = result.first()
    if row is None:
        found = await tx.first(select(col(Account.id)).where(col(Account.id) == account_id))
        if found is None:
            raise NotFound(f"Account {account_id!r} not found")
        raise InvalidRequest("The balance would become negative")
    return int(row.balance_cents)


async def list_api_keys(store: Store, account_id: str) -> list[dict[str, Any]]:
    """The account's keys, newest first: their displayed prefix and dates (a key is never stored)."""
    rows = await store.all(
        select(col(ApiKey.prefix), col(ApiKey.created_at_ms), col(ApiKey.revoked_at_ms))
        .where(col(ApiKey.account_id) == account_id)
        .order_by(col(ApiKey.created_at_ms).desc(), col(ApiKey.prefix))
    )
    return [
        {"prefix": r.prefix, "created_at_ms": r.created_at_ms, "revoked_at_ms": r.revoked_at_ms} for r in rows
    ]


async def authenticate(store: Store, key: str) -> Principal:
    return await authenticate_hash(store, api_key_hash(key), "Invalid API key")


async def authenticate_hash(store: Store, key_hash: str, refusal: str) -> Principal:
    """The owner of the live key with this hash; Unauthenticated(refusal) if there is none."""
    row = await store.api_key_owner(key_hash)
    if row is None:
        raise Unauthenticated(refusal)
    account_id, tier = row
    return Principal(account_id=account_id, tier=tier, key_hash=key_hash)


class PrincipalCache:
    """Key lookups reused for `ttl_seconds`, so a busy client's requests skip the database.

    The price is a revocation delay: a revoked key keeps working on an API process for at most
    `ttl_seconds` (LUNOS_AUTH_CACHE_SECONDS; 0 turns the cache off). Unknown keys are never cached,
    and entries are kept by the key's hash, never the key.
    """

    MAX_KEYS = 10_000

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, store: Store, key: str) -> Principal:
        return await self.authenticate_hash(store, api_key_hash(key), "Invalid API key")

    async def authenticate_hash(self, store: Store, key_hash: str, refusal: str) -> Principal:
        """The owner of the live key with this hash (a stream token's key, say)."""
        if self._ttl <= 0:
            return await authenticate_hash(store, key_hash, refusal)
        now = time.monotonic()
        entry = self._entries.get(key_hash)
        if entry is not None and entry[0] > now:
            return entry[1]
        principal = await authenticate_hash(store, key_hash, refusal)
        if len(self._entries) >= self.MAX_KEYS:
            self._entries.clear()
        self._entries[key_hash] = (now + self._ttl, principal)
        return principal

    def forget(self, key_hash: str) -> None:
        """Drop a key's entry at once (it was revoked)."""
        self._entries.pop(key_hash, None)
