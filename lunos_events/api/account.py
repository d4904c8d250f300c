"""The caller's account and the model catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.auth import authenticate, runtime
from lunos_events.money import CURRENCY, format_amount
from lunos_events.services.accounts import get_account


async def account(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    row = await get_account(runtime(request).store, principal.account_id)
    return JSONResponse(
        {"id": row.id, "balance": format_amount(row.balance_cents), "currency": CURRENCY, "tier": row.tier}
    )


async def models(request: Request) -> JSONResponse:
    catalog = runtime(request).catalog
    return JSONResponse({"object": "list", "data": [m.public_view() for m in catalog.models]})


routes = [
    Route("/v1/account", account, methods=["GET"]),
    Route("/v1/models", models, methods=["GET"]),
]
