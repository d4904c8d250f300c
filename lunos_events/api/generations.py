"""Routes of the video job API: submit, status, cancel, and the account's list of operations."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.auth import authenticate, runtime
from lunos_events.api.body import read_json_object
from lunos_events.api.caps import authenticate_read
from lunos_events.api.headers import submit_headers
from lunos_events.api.streams import operation_events_url
from lunos_events.services import deletion, history, idempotency
from lunos_events.services.admission import admit_submit
from lunos_events.services.generation_request import parse_app_id, parse_generation_request


async def create_generation(request: Request) -> JSONResponse:
    rt = runtime(request)
    principal = await authenticate(request)
    key = idempotency.parse_key(request.headers.get("idempotency-key"))
    body = await read_json_object(request, rt.settings.max_body_bytes)
    generation = parse_generation_request(
        body,
        rt.catalog,
        max_prompt_chars=rt.settings.max_prompt_chars,
        header_app_id=request.headers.get("x-app-id"),
    )
    admitted = await admit_submit(
        rt.generations,
        principal,
        generation,
        idempotency_key=key,
        fingerprint=idempotency.request_hash(body, generation.app_id) if key is not None else None,
    )
    events_url = operation_events_url(request, principal.account_id, admitted.response["id"])
    return JSONResponse({**admitted.response, "events_url": events_url}, headers=submit_headers(admitted))


async def get_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    status = await runtime(request).generations.status(principal, request.path_params["operation_id"])
    status["events_url"] = operation_events_url(request, principal.account_id, status["id"])
    return JSONResponse(status)


async def cancel_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    status = await runtime(request).generations.cancel(principal, request.path_params["operation_id"])
    return JSONResponse(status)


async def delete_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    rt = runtime(request)
    status = await deletion.delete_generation(
        rt.store, rt.storage, principal.account_id, request.path_params["operation_id"]
    )
    return JSONResponse(status)


async def list_generations(request: Request) -> JSONResponse:
    principal = await authenticate_read(request)
    query = request.query_params
    after = query.get("after")
    page = await history.list_operations(
        runtime(request).store,
        principal.account_id,
        status=history.parse_status(query.get("status")),
        app_id=parse_app_id(query.get("app_id")),
        limit=history.parse_limit(query.get("limit")),
        after=history.Cursor.decode(after) if after else None,
    )
    return JSONResponse(page)


# The status poll comes first: the router tries routes in order, and it is the busiest one.
routes = [
    Route("/v1/video/generations/{operation_id}", get_generation, methods=["GET"], name="get_generation"),
    Route("/v1/video/generations", create_generation, methods=["POST"], name="create_generation"),
    Route("/v1/video/generations", list_generations, methods=["GET"]),
    Route("/v1/video/generations/{operation_id}/cancel", cancel_generation, methods=["POST"]),
    Route("/v1/video/generations/{operation_id}", delete_generation, methods=["DELETE"]),
]
