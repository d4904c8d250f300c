"""Admin routes over webhooks: any account's endpoints, the delivery log across accounts, redelivery."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.admin import account_filter
from lunos_events.api.admin_auth import admin_actor
from lunos_events.api.auth import runtime
from lunos_events.services import accounts, audit
from lunos_events.webhooks import endpoints, history


async def list_endpoints(request: Request) -> JSONResponse:
    admin_actor(request)
    rt = runtime(request)
    account_id = (await accounts.get_account(rt.store, request.path_params["account_id"])).id
    return JSONResponse({"object": "list", "data": await endpoints.list_endpoints(rt, account_id)})


async def endpoint_deliveries(request: Request) -> JSONResponse:
    admin_actor(request)
    limit = history.page_limit(request.query_params.get("limit"))
    rows = await history.endpoint_deliveries(
        runtime(request), request.path_params["account_id"], request.path_params["endpoint_id"], limit
    )
    return JSONResponse({"object": "list", "data": rows})


async def recent_deliveries(request: Request) -> JSONResponse:
    admin_actor(request)
    query = request.query_params
    rows = await history.recent_deliveries(
        runtime(request),
        account_id=account_filter(query.get("account_id")),
        status=history.parse_delivery_status(query.get("status")),
        limit=history.page_limit(query.get("limit")),
    )
    return JSONResponse({"object": "list", "data": rows})


async def get_delivery(request: Request) -> JSONResponse:
    admin_actor(request)
    path = request.path_params
    return JSONResponse(await history.get_delivery(runtime(request), path["account_id"], path["delivery_id"]))


async def redeliver(request: Request) -> JSONResponse:
    actor = admin_actor(request)
    rt, path = runtime(request), request.path_params
    delivery = await history.redeliver(rt, path["account_id"], path["delivery_id"])
    await audit.record(rt.store, actor, "webhook.redeliver", path["account_id"], {"delivery": delivery["id"]})
    return JSONResponse(delivery, status_code=202)


routes = [
    Route("/v1/admin/accounts/{account_id}/webhooks", list_endpoints, methods=["GET"]),
    Route(
        "/v1/admin/accounts/{account_id}/webhooks/{endpoint_id}/deliveries",
        endpoint_deliveries,
        methods=["GET"],
    ),
    Route("/v1/admin/webhook-deliveries", recent_deliveries, methods=["GET"]),
    Route("/v1/admin/accounts/{account_id}/webhook-deliveries/{delivery_id}", get_delivery, methods=["GET"]),
    Route(
        "/v1/admin/accounts/{account_id}/webhook-deliveries/{delivery_id}/redeliver",
        redeliver,
        methods=["POST"],
    ),
]
