"""The caller's account and the model catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.auth import authenticate, runtime
from lunos_events.money import CURRENCY, format_amount
from lunos_events.services.accounts import get_account
from lunos_events.services.fair_queue import queue_depths


async def account(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    row = await get_account(runtime(request).store, principal.account_id)
    return JSONResponse(
        {"id": row.id, "balance": format_amount(row.balance_cents), "currency": CURRENCY, "tier": row.tier}
    )


async def models(request: Request) -> JSONResponse:
    """The catalog, each model with its provider queue now: how many wait, and typical waits."""
    rt = runtime(request)
    depths = await queue_depths(rt.store)
    data = []
    for model in rt.catalog.models:
        upstream = model.provider_model
        queue = {
            "depth": depths.get(upstream, 0),
            "typical_wait_seconds": round(await rt.generations.latencies.wait_seconds(upstream), 1),
            "typical_run_seconds": round(await rt.generations.latencies.run_seconds(upstream), 1),
        }
        data.append({**model.public_view(), "queue": queue})
    return JSONResponse({"object": "list", "data": data})


routes = [
    Route("/v1/account", account, methods=["GET"]),
    Route("/v1/models", models, methods=["GET"]),
]
