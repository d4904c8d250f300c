"""Letting a submit in: idempotent replay, tier limits, then charge and start, in that order.

Limits are taken before anything is charged, so a refused submit (429) or a Redis outage (503)
never costs the caller money; a slot reserved for a submit that then fails is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from lunos_events.errors import InFlightLimited, ProviderStartFailed
from lunos_events.services import idempotency, limits
from lunos_events.services.accounts import Principal
from lunos_events.services.generation_request import GenerationRequest
from lunos_events.services.generations import Generations
from lunos_events.store.models import ACTIVE_STATUSES, Operation


@dataclass(frozen=True, slots=True)
class Admitted:
    """The submit's response body; `quota` is None when it replays an earlier response."""

    response: dict[str, Any]
    quota: limits.Quota | None


async def admit_submit(
    generations: Generations,
    principal: Principal,
    request: GenerationRequest,
    *,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> Admitted:
    """`fingerprint` (idempotency.request_hash) is needed only with an `idempotency_key`."""
    store, bus, settings = generations.store, generations.bus, generations.settings
    account_id = principal.account_id
    claim: idempotency.Claim | None = None
    if idempotency_key is not None:
        assert fingerprint is not None
        first = await idempotency.claim(
            store,
            account_id,
            idempotency_key,
            fingerprint,
            settings.idempotency_ttl_seconds,
            settings.idempotency_claim_lease_seconds,
        )
        if not isinstance(first, idempotency.Claim):
            return Admitted(first, None)
        claim = first
    op = None
    try:
        quota = await _take_submit(generations, principal)
        try:
            op, event = await generations.create(principal, request, claim)
        except BaseException:
            await limits.give_back(bus, account_id, quota.reservation)
            raise
        # The slot passes to the operation while its event goes out and its tracking is queued.
        await asyncio.gather(
            bus.limits.confirm(account_id, quota.reservation, op.id, op.deadline_at_ms),
            generations.launch(op, event),
        )
        response = await generations.start(op, event)
    except BaseException as exc:
        if claim is None:
            raise
        if op is None or isinstance(exc, ProviderStartFailed):
            # Nothing was made, or the provider refused and the operation failed and was refunded
            # (the client is told so): a repeat may try again.
            await idempotency.release(store, account_id, claim)
        else:
            # Charged, and the operation goes on (its tracker finishes it): a repeat gets it. If the
            # database is what failed, the claim's lease runs out instead and the repeat gets it then.
            with contextlib.suppress(Exception):
                await idempotency.answer_with_operation(store, account_id, claim, op.id)
        raise
    if claim is not None:
        await idempotency.complete(store, account_id, claim, response)
    return Admitted(response, quota)


async def _take_submit(generations: Generations, principal: Principal) -> limits.Quota:
    """Take a submit and a slot; when the slots look full, check them against the database once.

    An operation's slot is freed just after its final state is committed, so a client that saw
    it finish may submit before the slot is back; a lost release would hold it until the deadline.
    """
    settings = generations.settings
    tier = settings.tier_limits(principal.tier)
    window = settings.rate_limit_window_seconds
    try:
        return await limits.take_submit(generations.bus, principal.account_id, tier, window)
    except InFlightLimited:
        if not await _free_ended_slots(generations, principal.account_id):
            raise
    return await limits.take_submit(generations.bus, principal.account_id, tier, window)


async def _free_ended_slots(generations: Generations, account_id: str) -> bool:
    holders = await limits.operations_in_flight(generations.bus, account_id)
    if not holders:
        return False
    ended_query = select(col(Operation.id)).where(
        col(Operation.id).in_(holders),
        col(Operation.account_id) == account_id,
        col(Operation.status).not_in(ACTIVE_STATUSES),
    )
    ended = [row[0] for row in await generations.store.all(ended_query)]
    if ended:
        await limits.give_back(generations.bus, account_id, *ended)
    return bool(ended)
