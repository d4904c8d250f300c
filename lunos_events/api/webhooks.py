"""Webhook routes: endpoints, secrets, the delivery log, redelivery and test events."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lunos_events.api.auth import authenticate, runtime
from lunos_events.api.body import read_json_object
from lunos_events.api.caps import authenticate_read, authenticate_webhook_send
from lunos_events.runtime import Runtime
from lunos_events.webhooks import endpoints, history


async def _caller(request: Request) -> tuple[Runtime, str]:
    principal = await authenticate(request)
    return runtime(request), principal.account_id


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, runtime(request).settings.max_body_bytes)


async def default_secret(request: Request) -> JSONResponse:
    rt, account_id = await _caller(request)
    return JSONResponse({"secret": await endpoints.default_secret(rt, account_id)})


async def create_endpoint(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    rt = runtime(request)
    cap = rt.settings.tier_limits(principal.tier).max_webhook_endpoints
    created = await endpoints.create_endpoint(rt, principal.account_id, await _body(request), cap)
    return JSONResponse(created, status_code=201)


async def list_endpoints(request: Request) -> JSONResponse:
    account_id = (await authenticate_read(request)).account_id
    rt = runtime(request)
    return JSONResponse({"object": "list", "data": await endpoints.list_endpoints(rt, account_id)})


async def get_endpoint(request: Request) -> JSONResponse:
    rt, account_id = await _caller(request)
    row = await endpoints.load_endpoint(rt, account_id, request.path_params["endpoint_id"])
    return JSONResponse(endpoints.endpoint_view(row))


async def update_endpoint(request: Request) -> JSONResponse:
    rt, account_id = await _caller(request)
    body = await _body(request)
    return JSONResponse(
        await endpoints.update_endpoint(rt, account_id, request.path_params["endpoint_id"], body)
    )


async def delete_endpoint(request: Request) -> Response:
    rt, account_id = await _caller(request)
    await endpoints.delete_endpoint(rt, account_id, request.path_params["endpoint_id"])
    return Response(status_code=204)


async def rotate_secret(request: Request) -> JSONResponse:
    rt, account_id = await _caller(request)
    return JSONResponse(await endpoints.rotate_secret(rt, account_id, request.path_params["endpoint_id"]))


async def send_test(request: Request) -> JSONResponse:
    account_id = (await authenticate_webhook_send(request)).account_id
    rt = runtime(request)
    delivery = await history.send_test_event(rt, account_id, request.path_params["endpoint_id"])
    return JSONResponse(delivery, status_code=202)


async def list_deliveries(request: Request) -> JSONResponse:
    account_id = (await authenticate_read(request)).account_id
    rt = runtime(request)
    limit = history.page_limit(request.query_params.get("limit"))
    rows = await history.endpoint_deliveries(rt, account_id, request.path_params["endpoint_id"], limit)
    return JSONResponse({"object": "list", "data": rows})


async def get_delivery(request: Request) -> JSONResponse:
    rt, account_id = await _caller(request)
    return JSONResponse(await history.get_delivery(rt, account_id, request.path_params["delivery_id"]))


async def redeliver(request: Request) -> JSONResponse:
    account_id = (await authenticate_webhook_send(request)).account_id
    rt = runtime(request)
    delivery = await history.redeliver(rt, account_id, request.path_params["delivery_id"])
    return JSONResponse(delivery, status_code=202)


routes = [
    Route("/v1/webhooks", create_endpoint, methods=["POST"]),
    Route("/v1/webhooks", list_endpoints, methods=["GET"]),
    Route("/v1/webhooks/default/secret", default_secret, methods=["GET"]),
    Route("/v1/webhooks/deliveries/{delivery_id}", get_delivery, methods=["GET"]),
    Route("/v1/webhooks/deliveries/{delivery_id}/redeliver", redeliver, methods=["POST"]),
    Route("/v1/webhooks/{endpoint_id}", get_endpoint, methods=["GET"]),
    Route("/v1/webhooks/{endpoint_id}", update_endpoint, methods=["PATCH"]),
    Route("/v1/webhooks/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
    Route("/v1/webhooks/{endpoint_id}/rotate-secret", rotate_secret, methods=["POST"]),
    Route("/v1/webhooks/{endpoint_id}/test", send_test, methods=["POST"]),
    Route("/v1/webhooks/{endpoint_id}/deliveries", list_deliveries, methods=["GET"]),
]
