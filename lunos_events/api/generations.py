"""Routes of the video job API: submit, status, cancel, and the account's list of operations."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.auth import authenticate, runtime
from lunos_events.api.body import read_json_object
from lunos_events.api.caps import authenticate_read
from lunos_events.api.errors import status_for
from lunos_events.api.headers import submit_headers
from lunos_events.api.streams import operation_events_url
from lunos_events.errors import InsufficientBalance, InvalidRequest, NotFound
from lunos_events.money import CURRENCY
from lunos_events.services import deletion, history, idempotency
from lunos_events.services.accounts import Principal
from lunos_events.services.admission import Admitted, admit_submit
from lunos_events.services.estimates import estimate
from lunos_events.services.generation_request import (
    GenerationRequest,
    parse_app_id,
    parse_generation_request,
)
from lunos_events.services.media_request import MAX_IMAGES, largest_submit_bytes
from lunos_events.settings import Settings

IMAGE_FIELDS = ("image", "lastFrame", "referenceImages")


def image_body_limit(settings: Settings, images: int = MAX_IMAGES) -> int:
    return largest_submit_bytes(settings.max_body_bytes, settings.max_image_bytes, images)


def carries_images(body: dict[str, Any]) -> bool:
    parameters = body.get("parameters")
    return isinstance(parameters, dict) and any(parameters.get(f) is not None for f in IMAGE_FIELDS)


async def read_submit_body(request: Request) -> dict[str, Any]:
    """A submit's JSON body, allowed to be larger when it carries images."""
    settings = runtime(request).settings
    return await read_json_object(
        request,
        settings.max_body_bytes,
        larger_limit=image_body_limit(settings),
        allows_larger=carries_images,
    )


def parse_generation(request: Request, body: dict[str, Any]) -> GenerationRequest:
    rt = runtime(request)
    return parse_generation_request(
        body,
        rt.catalog,
        max_prompt_chars=rt.settings.max_prompt_chars,
        header_app_id=request.headers.get("x-app-id"),
        max_image_bytes=rt.settings.max_image_bytes,
    )


async def admit_body(request: Request, principal: Principal, body: dict[str, Any]) -> Admitted:
    """Validate a submit body and admit it (idempotency, limits, charge, start): every submit route."""
    rt = runtime(request)
    key = idempotency.parse_key(request.headers.get("idempotency-key"))
    generation = parse_generation(request, body)
    if not generation.media.empty:
        await rt.generations.check_inputs(principal, generation)
    return await admit_submit(
        rt.generations,
        principal,
        generation,
        idempotency_key=key,
        fingerprint=idempotency.request_hash(body, generation.app_id) if key is not None else None,
    )


async def create_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    admitted = await admit_body(request, principal, await read_submit_body(request))
    events_url = operation_events_url(request, principal, admitted.response["id"])
    return JSONResponse({**admitted.response, "events_url": events_url}, headers=submit_headers(admitted))


async def get_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    status = await runtime(request).generations.status(principal, request.path_params["operation_id"])
    status["events_url"] = operation_events_url(request, principal, status["id"])
    return JSONResponse(status)


async def cancel_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    status = await runtime(request).generations.cancel(principal, request.path_params["operation_id"])
    return JSONResponse(status)


async def delete_generation(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    rt = runtime(request)
    status = await deletion.delete_generation(
        rt.store, rt.storage, rt.generations.outbox, principal.account_id, request.path_params["operation_id"]
    )
    status["events_url"] = operation_events_url(request, principal, status["id"])
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
        relink=runtime(request).generations.relink,
    )
    return JSONResponse(page)


async def create_estimate(request: Request) -> JSONResponse:
    """The submit's body, checked as a submit checks it, answered with its cost; nothing is charged.

    A request the submit would refuse answers 200 as well, with `accepted: false` and `refused`:
    the status and error the submit would answer.
    """
    rt = runtime(request)
    principal = await authenticate(request)
    refused: dict[str, Any] | None = None
    result: dict[str, Any] = {"cost": None, "currency": CURRENCY}
    try:
        generation = parse_generation(request, await read_submit_body(request))
        result = await estimate(rt.generations, principal, generation)
        if not result["affordable"]:
            refused = {"status": status_for(InsufficientBalance()), "error": InsufficientBalance().message}
    except (InvalidRequest, NotFound) as exc:
        refused = {"status": status_for(exc), "error": exc.message}
    return JSONResponse({**result, "accepted": refused is None, "refused": refused})


# The status poll comes first: the router tries routes in order, and it is the busiest one.
routes = [
    Route("/v1/video/generations/{operation_id}", get_generation, methods=["GET"], name="get_generation"),
    Route("/v1/video/generations", create_generation, methods=["POST"], name="create_generation"),
    Route("/v1/video/generations", list_generations, methods=["GET"]),
    Route("/v1/video/generations/{operation_id}/cancel", cancel_generation, methods=["POST"]),
    Route("/v1/video/estimates", create_estimate, methods=["POST"]),
    Route("/v1/video/generations/{operation_id}", delete_generation, methods=["DELETE"]),
]
