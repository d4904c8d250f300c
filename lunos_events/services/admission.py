"""Letting a submit in: idempotent replay, tier limits, then charge and start, in that order.

Limits are taken before anything is charged, so a refused submit (429) or a Redis outage (503)
never costs the caller money; a slot reserved for a submit that then fails is given back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lunos_events.store.models import PENDING, Operation
from lunos_events.errors import InFlightLimited
from lunos_events.redis_batches import RedisCommands
from lunos_events.runtime import Runtime
from lunos_events.services import generations, idempotency, limits
from lunos_events.services.accounts import Principal
from lunos_events.services.generation_request import GenerationRequest

REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}


async def admit_submit(
    rt: Runtime,
    principal: Principal,
    request: GenerationRequest,
    *,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The submit's response body and headers (rate-limit figures, or the replay marker).

    `fingerprint` (idempotency.request_hash) is needed only with an `idempotency_key`.
    """
    account_id = principal.account_id
    prefix = rt.settings.redis_key_prefix
    if idempotency_key is not None:
        assert fingerprint is not None
        first = await idempotency.claim(
            rt.engine, account_id, idempotency_key, fingerprint, rt.settings.idempotency_ttl_seconds
        )
        if first is not None:
            return first, REPLAYED_HEADERS
    try:
        quota = await _take_submit(rt, principal)
        try:
            op, event = await generations.create(rt, principal, request)
        except BaseException:
            await limits.give_back(rt.redis, prefix, account_id, quota.reservation)
            raise

        # One round trip: the slot passes to the operation, its event goes out, tracking is queued.
        def launch(pipe: RedisCommands) -> None:
            limits.queue_confirm(pipe, prefix, account_id, quota, op.id, op.deadline_at_ms)
            generations.queue_launch(pipe, rt, op, event)

        await rt.redis_batches.execute(launch)
        response = await generations.start(rt, op, event)
    except BaseException:
        if idempotency_key is not None:
            await idempotency.release(rt.engine, account_id, idempotency_key)
        raise
    if idempotency_key is not None:
        await idempotency.complete(rt.engine, account_id, idempotency_key, response)
    return response, quota.headers


async def _take_submit(rt: Runtime, principal: Principal) -> limits.Quota:
    """Take a submit and a slot; when the slots look full, check them against the database once.

    An operation's slot is freed just after its final state is committed, so a client that saw
    it finish may submit before the slot is back; a lost release would hold it until the deadline.
    """
    prefix = rt.settings.redis_key_prefix
    tier = rt.settings.tier_limits(principal.tier)
    window = rt.settings.rate_limit_window_seconds
    try:
        return await limits.take_submit(rt.redis_batches, prefix, principal.account_id, tier, window)
    except InFlightLimited:
        if not await _free_ended_slots(rt, principal.account_id):
            raise
    return await limits.take_submit(rt.redis_batches, prefix, principal.account_id, tier, window)


async def _free_ended_slots(rt: Runtime, account_id: str) -> bool:
    prefix = rt.settings.redis_key_prefix
    holders = await limits.operations_in_flight(rt.redis, prefix, account_id)
    if not holders:
        return False
    ended_query = select(Operation.id).where(
        Operation.id.in_(holders), Operation.account_id == account_id, Operation.status != PENDING
    )
    async with rt.engine.connect() as conn:
        ended = list((await conn.execute(ended_query)).scalars())
    if ended:
        await limits.give_back(rt.redis, prefix, account_id, *ended)
    return bool(ended)
