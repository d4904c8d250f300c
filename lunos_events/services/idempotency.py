"""`Idempotency-Key` on submit: a repeat of a request gets the first one's response, never a new job.

The key is claimed by inserting its row (the primary key makes exactly one request win, also across
API replicas). The winner stores its response; concurrent repeats wait for it. A repeat with a
different body is refused, and a claim whose request failed is dropped so the client can retry.

A request can also die holding its claim (its API process killed, the database gone before the
claim could be dropped). The operation it created is recorded on the claim in the same transaction
as the charge, so once the claim is older than its lease (`LUNOS_IDEMPOTENCY_CLAIM_LEASE_SECONDS`,
longer than a live submit holds its claim: the limits, the charge, and the provider's start with
its retries all happen well within it) a repeat answers with that
operation, or, when there is none, takes the claim over and goes ahead. The claim's creation time
is its fencing token: the request that lost its claim can no longer record an operation on it, so
its charge rolls back, and one key never makes two operations.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Delete, Update, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from lunos_events.errors import Conflict, InvalidRequest
from lunos_events.ids import now_ms
from lunos_events.money import charged
from lunos_events.store.models import PENDING, IdempotencyKey, Operation
from lunos_events.store.transactions import Store, Tx

MAX_KEY_CHARS = 255
IN_PROGRESS_WAIT_SECONDS = 30.0
_POLL_SECONDS = 0.05

KEY_REUSED = "This Idempotency-Key was already used with a different request"
STILL_RUNNING = "A request with this Idempotency-Key is still in progress; retry shortly"

_Statement = TypeVar("_Statement", Update, Delete)


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_CHARS or not value.isascii() or not value.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable ASCII characters")
    return value


def request_hash(body: dict[str, Any], app_id: str | None) -> str:
    """The request's identity: its JSON body (key order and spacing aside) and its app."""
    canonical = json.dumps([body, app_id], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """This request owns the key; `at_ms` tells its claim from a later one after a takeover."""

    key: str
    at_ms: int


async def claim(
    store: Store, account_id: str, key: str, fingerprint: str, ttl_seconds: int, lease_seconds: float = 120.0
) -> Claim | dict[str, Any]:
    """A Claim when this request owns the key (go ahead); the first response when it is a repeat."""
    deadline = time.monotonic() + IN_PROGRESS_WAIT_SECONDS
    while True:
        stamp = now_ms()
        try:
            async with store.transaction() as conn:
                await conn.execute(
                    # SQLModel declares no __table__ (the SQLAlchemy mapping sets it).
                    IdempotencyKey.__table__.insert().values(  # type: ignore[attr-defined]
                        account_id=account_id,
                        key=key,
                        request_hash=fingerprint,
                        response=None,
                        created_at_ms=stamp,
                        expires_at_ms=stamp + ttl_seconds * 1000,
                    )
                )
            return Claim(key, stamp)
        except IntegrityError:
            pass
        async with store.transaction() as conn:
            row = (
                await conn.execute(
                    select(IdempotencyKey).where(
                        col(IdempotencyKey.account_id) == account_id, col(IdempotencyKey.key) == key
                    )
                )
            ).first()
            if row is not None and row.expires_at_ms <= stamp:
                await conn.execute(_this_row(account_id, key, delete(IdempotencyKey)))
                continue
        if row is None:
            continue  # the first request failed and let go of the key: claim it again
        if row.request_hash != fingerprint:
            raise Conflict(KEY_REUSED)
        if row.response is not None:
            first_response: dict[str, Any] = json.loads(row.response)
            return first_response
        if row.created_at_ms + lease_seconds * 1000 <= stamp:
            recovered = await _recover(store, account_id, key, row.created_at_ms, row.operation_id)
            if recovered is not None:
                return recovered
            continue  # its request died before charging anything: claim the key again
        if time.monotonic() > deadline:
            raise Conflict(STILL_RUNNING)
        await asyncio.sleep(_POLL_SECONDS)


async def _recover(
    store: Store, account_id: str, key: str, claimed_at_ms: int, operation_id: str | None
) -> dict[str, Any] | None:
    """A dead request's claim: the response its operation stands for, or None once it is dropped."""
    if operation_id is None:
        async with store.transaction() as conn:
            await conn.execute(_claim_row(account_id, Claim(key, claimed_at_ms), delete(IdempotencyKey)))
        return None
    return await answer_with_operation(store, account_id, Claim(key, claimed_at_ms), operation_id)


async def answer_with_operation(
    store: Store, account_id: str, claim: Claim, operation_id: str
) -> dict[str, Any]:
    """Store, as the claim's response, the operation its request created: for a request that failed
    after the charge (the operation goes on, and a repeat must get it, never make another)."""
    row = await store.first(
        select(col(Operation.provider_operation), col(Operation.cost_cents)).where(
            col(Operation.id) == operation_id
        )
    )
    # The shape the request would have answered: no operation_name until the provider took it.
    started = {"operation_name": row.provider_operation} if row and row.provider_operation else {}
    response: dict[str, Any] = {
        "id": operation_id,
        **started,
        "status": PENDING,
        **(charged(row.cost_cents) if row else {}),
    }
    await complete(store, account_id, claim, response)
    return response


async def record_operation(tx: Tx, account_id: str, claim: Claim, operation_id: str) -> None:
    """In the transaction that charges for it: the operation this claim's request created. A claim
    taken over meanwhile refuses it, and the transaction (the charge with it) rolls back."""
    result = await tx.execute(
        _claim_row(account_id, claim, update(IdempotencyKey))
        .where(col(IdempotencyKey.operation_id).is_(None))
        .values(operation_id=operation_id)
    )
    if result.rowcount != 1:
        raise Conflict(STILL_RUNNING)


async def complete(store: Store, account_id: str, claim: Claim, response: dict[str, Any]) -> None:
    async with store.transaction() as conn:
        await conn.execute(
            _claim_row(account_id, claim, update(IdempotencyKey)).values(response=json.dumps(response))
        )


async def release(store: Store, account_id: str, claim: Claim) -> None:
    """Drop a claim whose request did not create an operation, so a retry can go through."""
    async with store.transaction() as conn:
        await conn.execute(_claim_row(account_id, claim, delete(IdempotencyKey)))


async def purge_expired(store: Store) -> int:
    async with store.transaction() as conn:
        result = await conn.execute(
            delete(IdempotencyKey).where(col(IdempotencyKey.expires_at_ms) <= now_ms())
        )
    return result.rowcount or 0


def _this_row(account_id: str, key: str, statement: _Statement) -> _Statement:
    return statement.where(col(IdempotencyKey.account_id) == account_id, col(IdempotencyKey.key) == key)


def _claim_row(account_id: str, claim: Claim, statement: _Statement) -> _Statement:
    """The key's row while it is still this claim's (not taken over after a lease ran out)."""
    return _this_row(account_id, claim.key, statement).where(col(IdempotencyKey.created_at_ms) == claim.at_ms)
