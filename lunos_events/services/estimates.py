"""What a submit would cost and whether it would be refused, without taking or charging anything."""

from __future__ import annotations

from typing import Any

from lunos_events.money import CURRENCY, format_amount
from lunos_events.services.accounts import Principal, get_account
from lunos_events.services.generation_request import GenerationRequest
from lunos_events.services.generations import Generations


async def estimate(
    generations: Generations, principal: Principal, request: GenerationRequest
) -> dict[str, Any]:
    """The cost of `request` (price x seconds x samples, at its resolution's price) and the
    account's balance. Raises what the submit would raise for its inputs (400, 404); a balance
    that does not cover the cost is reported, not raised."""
    if not request.media.empty:
        await generations.check_inputs(principal, request)
    model = request.model
    resolution = request.options.get("resolution")
    cost = request.cost_cents
    balance = (await get_account(generations.store, principal.account_id)).balance_cents
    return {
        "model": model.id,
        "cost": format_amount(cost),
        "currency": CURRENCY,
        "price_per_second": format_amount(model.price_cents(resolution)),
        "duration_seconds": request.duration_seconds,
        "sample_count": request.sample_count,
        "resolution": resolution,
        "balance": format_amount(balance),
        "affordable": balance >= cost,
    }
