"""Letting a submit in: idempotent replay, tier limits, then charge and start, in that order.

Limits are taken before anything is charged, so a refused submit (429) or a Redis outage (503)
never costs the caller money; a slot reserved for a submit that then fails is given back.
"""

from __future__ import annotations

from typing import Any

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
    fingerprint: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The submit's response body and headers (rate-limit figures, or the replay marker)."""
    account_id = principal.account_id
    prefix = rt.settings.redis_key_prefix
    if idempotency_key is not None:
        first = await idempotency.claim(
            rt.engine, account_id, idempotency_key, fingerprint, rt.settings.idempotency_ttl_seconds
        )
        if first is not None:
            return first, REPLAYED_HEADERS
    try:
        quota = await limits.take_submit(
            rt.redis,
            prefix,
            account_id,
            rt.settings.tier_limits(principal.tier),
            rt.settings.rate_limit_window_seconds,
        )
        try:
            op, event = await generations.create(rt, principal, request)
        except BaseException:
            await limits.give_back(rt.redis, prefix, account_id, quota.reservation)
            raise
        # One round trip: the slot passes to the operation, its event goes out, tracking is queued.
        async with rt.redis.pipeline(transaction=False) as pipe:
            limits.queue_confirm(pipe, prefix, account_id, quota, op.id, op.deadline_at_ms)
            generations.queue_launch(pipe, rt, op, event)
            await pipe.execute()
        response = await generations.start(rt, op, event)
    except BaseException:
        if idempotency_key is not None:
            await idempotency.release(rt.engine, account_id, idempotency_key)
        raise
    if idempotency_key is not None:
        await idempotency.complete(rt.engine, account_id, idempotency_key, response)
    return response, quota.headers
