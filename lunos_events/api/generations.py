"""Routes of the video job API: submit, status, cancel, and the account's list of operations."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope

from lunos_events.api.auth import authenticate, authenticate_header
from lunos_events.api.body import read_json_body
from lunos_events.api.plain import NO_HEADERS, JsonEndpoint, Reply
from lunos_events.api.streams import operation_events_url
from lunos_events.services import generations, history, idempotency
from lunos_events.services.admission import admit_submit
from lunos_events.services.generation_request import parse_app_id, parse_generation_request


async def create_generation(scope: Scope, receive: Receive) -> Reply:
    app = scope["app"]
    rt = app.state.rt
    headers = Headers(scope=scope)
    principal = await authenticate_header(rt, headers.get("authorization"))
    key = idempotency.parse_key(headers.get("idempotency-key"))
    body = await read_json_body(headers.get("content-length"), receive, rt.settings.max_body_bytes)
    generation = parse_generation_request(
        body,
        rt.catalog,
        max_prompt_chars=rt.settings.max_prompt_chars,
        header_app_id=headers.get("x-app-id"),
    )
    created, reply_headers = await admit_submit(
        rt,
        principal,
        generation,
        idempotency_key=key,
        fingerprint=idempotency.request_hash(body, generation.app_id) if key is not None else None,
    )
    events_url = operation_events_url(app, principal.account_id, created["id"])
    return {**created, "events_url": events_url}, reply_headers


async def get_generation(scope: Scope, receive: Receive) -> Reply:
    app = scope["app"]
    rt = app.state.rt
    principal = await authenticate_header(rt, Headers(scope=scope).get("authorization"))
    status = await generations.get_status(rt, principal, scope["path_params"]["operation_id"])
    status["events_url"] = operation_events_url(app, principal.account_id, status["id"])
    return status, NO_HEADERS


async def cancel_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    status = await generations.cancel(request.app.state.rt, principal, request.path_params["operation_id"])
    return JSONResponse(status)


async def list_generations(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    query = request.query_params
    after = query.get("after")
    page = await history.list_operations(
        request.app.state.rt.engine,
        principal.account_id,
        status=history.parse_status(query.get("status")),
        app_id=parse_app_id(query.get("app_id")),
        limit=history.parse_limit(query.get("limit")),
        after=history.Cursor.decode(after) if after else None,
    )
    return JSONResponse(page)


# The status poll comes first: the router tries routes in order, and it is the busiest one. It and
# the submit are plain ASGI endpoints for the same reason (see plain.py).
routes = [
    Route(
        "/v1/video/generations/{operation_id}",
        JsonEndpoint(get_generation),
        methods=["GET"],
        name="get_generation",
    ),
    Route(
        "/v1/video/generations", JsonEndpoint(create_generation), methods=["POST"], name="create_generation"
    ),
    Route("/v1/video/generations", list_generations, methods=["GET"]),
    Route("/v1/video/generations/{operation_id}/cancel", cancel_generation, methods=["POST"]),
]
