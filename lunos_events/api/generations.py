"""Routes of the documented API: submit a generation, read its status."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.auth import authenticate
from lunos_events.api.body import read_json_object
from lunos_events.api.streams import operation_events_url
from lunos_events.services import generations
from lunos_events.services.generation_request import parse_generation_request


async def create_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    rt = request.app.state.rt
    body = await read_json_object(request, rt.settings.max_body_bytes)
    generation = parse_generation_request(
        body,
        rt.catalog,
        max_prompt_chars=rt.settings.max_prompt_chars,
        header_app_id=request.headers.get("x-app-id"),
    )
    created = await generations.submit(rt, principal, generation)
    created["events_url"] = operation_events_url(request, principal.account_id, created["id"])
    return JSONResponse(created)


async def get_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    status = await generations.get_status(
        request.app.state.rt, principal, request.path_params["operation_id"]
    )
    status["events_url"] = operation_events_url(request, principal.account_id, status["id"])
    return JSONResponse(status)


routes = [
    Route("/v1/video/generations", create_generation, methods=["POST"]),
    Route("/v1/video/generations/{operation_id}", get_generation, methods=["GET"]),
]
