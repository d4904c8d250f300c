"""An Idempotency-Key whose request died holding its claim (its API process killed, or the database
lost before the claim could be dropped): a repeat after the claim's lease answers with the
operation the request created, or goes ahead when it created none; never a second operation, and
never a claim stuck until the key expires (found by tests/test_stack_chaos.py: a submit repeated
for minutes, every attempt waiting 30 s on the dead claim)."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import col

from lunos_events.errors import Conflict
from lunos_events.services import accounts, idempotency
from lunos_events.settings import Settings
from lunos_events.store.models import IdempotencyKey
from tests.conftest import auth, create_user
from tests.helpers import generation_body

pytestmark = pytest.mark.anyio

LEASE_MS = int(Settings().idempotency_claim_lease_seconds * 1000)


async def age_claim(rt, account_id: str, key: str, *, drop_response: bool = False) -> None:
    """Make the key's claim older than its lease (as if its request died that long ago)."""
    values: dict[str, object] = {"created_at_ms": col(IdempotencyKey.created_at_ms) - LEASE_MS - 1}
    if drop_response:
        values["response"] = None  # the request died before it stored its response
    async with rt.store.transaction() as tx:
        await tx.execute(
            update(IdempotencyKey)
            .where(col(IdempotencyKey.account_id) == account_id, col(IdempotencyKey.key) == key)
            .values(**values)
        )


async def test_a_request_that_died_after_charging_is_answered_with_its_operation(service, client) -> None:
    key = await create_user(service, "survivor", "100.00")
    headers = auth(key) | {"Idempotency-Key": "order-1"}
    first = await client.post("/v1/video/generations", headers=headers, json=generation_body())
    assert first.status_code == 200
    await age_claim(service, "survivor", "order-1", drop_response=True)

    again = await client.post("/v1/video/generations", headers=headers, json=generation_body())
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    # The same answer as the first, charge included (events_url carries a freshly minted token).
    shown = {k: v for k, v in first.json().items() if k != "events_url"}
    assert {k: v for k, v in again.json().items() if k != "events_url"} == shown
    assert shown["cost"] == "3.20" and shown["operation_name"]
    assert (await accounts.get_account(service.store, "survivor")).balance_cents == 10000 - 320
    listed = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]
    assert len(listed) == 1


async def test_a_request_that_died_before_charging_lets_a_repeat_go_ahead(service, client) -> None:
    key = await create_user(service, "orphan", "100.00")
    body = generation_body()
    claimed = await idempotency.claim(
        service.store, "orphan", "order-2", idempotency.request_hash(body, None), 60
    )
    assert isinstance(claimed, idempotency.Claim)  # ... and its request dies here
    await age_claim(service, "orphan", "order-2")

    headers = auth(key) | {"Idempotency-Key": "order-2"}
    repeat = await client.post("/v1/video/generations", headers=headers, json=body)
    assert repeat.status_code == 200, repeat.text
    assert "idempotent-replayed" not in repeat.headers
    assert (await accounts.get_account(service.store, "orphan")).balance_cents == 10000 - 320

    # The dead request's claim was taken over: it can no longer record an operation (its charge
    # would roll back with it).
    with pytest.raises(Conflict):
        async with service.store.transaction() as tx:
            await idempotency.record_operation(tx, "orphan", claimed, "video-op:orphan:1")


async def test_a_request_that_failed_after_charging_leaves_its_operation_on_the_key(service, client) -> None:
    """The operation goes on (its tracker ends it), so a repeat gets it at once, never a second one
    (found by the chaos test: a submit cut by a PostgreSQL restart after its charge released its key,
    and the client's resend made a second operation)."""
    await create_user(service, "cut-off", "100.00")
    body = generation_body()
    claimed = await idempotency.claim(
        service.store, "cut-off", "order-3", idempotency.request_hash(body, None), 60
    )
    assert isinstance(claimed, idempotency.Claim)
    async with service.store.transaction() as tx:
        await idempotency.record_operation(tx, "cut-off", claimed, "video-op:cut-off:1")
    await idempotency.answer_with_operation(service.store, "cut-off", claimed, "video-op:cut-off:1")

    repeat = await idempotency.claim(
        service.store, "cut-off", "order-3", idempotency.request_hash(body, None), 60
    )
    # No operation with that id was made here, so the answer has no operation_name nor charge.
    assert repeat == {"id": "video-op:cut-off:1", "status": "pending"}
