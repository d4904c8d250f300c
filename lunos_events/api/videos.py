"""OpenAI-style Videos API (/v1/videos): the same operations, money, limits, events and webhooks as
/v1/video/generations, in the request and response shapes of OpenAI's `client.videos`."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from lunos_events.api.auth import authenticate, runtime
from lunos_events.api.body import read_fields
from lunos_events.api.generations import admit_body
from lunos_events.api.headers import submit_headers
from lunos_events.api.video_shapes import (
    INPUT_REFERENCE_UNSUPPORTED,
    parse_order,
    parse_variant,
    submit_body,
    video_object,
)
from lunos_events.errors import Conflict, InvalidRequest, NotFound
from lunos_events.ids import operation_owner
from lunos_events.runtime import Runtime
from lunos_events.services import history
from lunos_events.services.accounts import Principal
from lunos_events.store.models import COMPLETED, PENDING, Operation

VIDEO_NOT_FOUND = "Video not found"


async def run_seconds(rt: Runtime, op: Operation) -> float:
    return await rt.generations.latencies.run_seconds(op.provider_model)


async def owned_video(rt: Runtime, principal: Principal, video_id: str) -> Operation:
    """The caller's operation; another account's answers exactly like an unknown id."""
    op = await rt.store.operation(video_id) if operation_owner(video_id) == principal.account_id else None
    if op is None or op.account_id != principal.account_id:
        raise NotFound(VIDEO_NOT_FOUND)
    return op


async def _shown(rt: Runtime, op: Operation) -> JSONResponse:
    video = video_object(op, await run_seconds(rt, op))
    headers = {}
    if video["status"] in ("queued", "in_progress"):
        # The SDK's create_and_poll waits this long between polls.
        headers["openai-poll-after-ms"] = str(max(100, int(rt.settings.poll_interval_seconds * 1000)))
    return JSONResponse(video, headers=headers)


async def create_video(request: Request) -> JSONResponse:
    rt = runtime(request)
    principal = await authenticate(request)
    fields = await read_fields(request, rt.settings.max_body_bytes)
    for name, value in fields.items():
        if isinstance(value, UploadFile):
            raise InvalidRequest(
                INPUT_REFERENCE_UNSUPPORTED if name == "input_reference" else f"Unexpected file '{name}'"
            )
    admitted = await admit_body(request, principal, submit_body(fields, rt.catalog))
    op = await owned_video(rt, principal, admitted.response["id"])
    response = await _shown(rt, op)
    response.headers.update(submit_headers(admitted))
    return response


async def retrieve_video(request: Request) -> JSONResponse:
    rt = runtime(request)
    principal = await authenticate(request)
    return await _shown(rt, await owned_video(rt, principal, request.path_params["video_id"]))


async def list_videos(request: Request) -> JSONResponse:
    rt = runtime(request)
    principal = await authenticate(request)
    query = request.query_params
    after = None
    if query.get("after"):
        try:
            last = await owned_video(rt, principal, query["after"])
        except NotFound:
            raise InvalidRequest("'after' must be the id of one of your videos") from None
        after = history.Cursor(last.created_at_ms, last.id)
    page, cursor = await history.operation_page(
        rt.store,
        principal.account_id,
        status=None,
        app_id=None,
        limit=history.parse_limit(query.get("limit")),
        after=after,
        ascending=parse_order(query.get("order")),
    )
    data: list[dict[str, Any]] = [video_object(op, await run_seconds(rt, op)) for op in page]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": cursor is not None,
        }
    )


async def video_content(request: Request) -> RedirectResponse:
    rt = runtime(request)
    principal = await authenticate(request)
    variant = parse_variant(request.query_params.get("variant"))
    op = await owned_video(rt, principal, request.path_params["video_id"])
    if op.status != COMPLETED or not op.video_url:
        raise Conflict(f"The video is not ready: it is {video_object(op, 1.0)['status']}")
    if variant == "thumbnail":
        # The status re-signs a poster URL that nears its expiry, as it does the video's.
        url = (await rt.generations.status(principal, op.id)).get("thumbnail_url")
        if not url:
            raise NotFound("This video has no thumbnail")
    else:
        url = await rt.generations.refreshed_video_url(op.id, op.video_key, op.video_url)
    return RedirectResponse(url, status_code=302)


async def delete_video(request: Request) -> JSONResponse:
    rt = runtime(request)
    principal = await authenticate(request)
    op = await owned_video(rt, principal, request.path_params["video_id"])
    if op.status != PENDING:
        raise Conflict(
            "Only a queued or in-progress video can be deleted (it is cancelled and refunded);"
            " finished videos are kept"
        )
    await rt.generations.cancel(principal, op.id)
    return JSONResponse({"id": op.id, "object": "video.deleted", "deleted": True})


routes = [
    Route("/v1/videos", create_video, methods=["POST"]),
    Route("/v1/videos", list_videos, methods=["GET"]),
    Route("/v1/videos/{video_id}", retrieve_video, methods=["GET"]),
    Route("/v1/videos/{video_id}", delete_video, methods=["DELETE"]),
    Route("/v1/videos/{video_id}/content", video_content, methods=["GET"]),
]
