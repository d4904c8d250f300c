"""OpenAI-style Videos API (/v1/videos): the same operations, money, limits, events and webhooks as
/v1/video/generations, in the request and response shapes of OpenAI's `client.videos`."""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from lunos_events.api.auth import authenticate, runtime
from lunos_events.api.body import Upload, read_fields
from lunos_events.api.caps import authenticate_read
from lunos_events.api.generations import admit_body, image_body_limit
from lunos_events.api.headers import submit_headers
from lunos_events.api.video_shapes import (
    parse_order,
    parse_variant,
    submit_body,
    uploaded_image,
    video_object,
)
from lunos_events.errors import Conflict, InvalidRequest, NotFound
from lunos_events.ids import operation_owner
from lunos_events.runtime import Runtime
from lunos_events.services import deletion, history
from lunos_events.services.accounts import Principal
from lunos_events.store.models import ACTIVE_STATUSES, COMPLETED, DELETED, Operation

VIDEO_NOT_FOUND = "Video not found"


async def run_seconds(rt: Runtime, op: Operation) -> float:
    return await rt.generations.latencies.run_seconds(op.provider_model)


async def owned_operation(rt: Runtime, principal: Principal, video_id: str) -> Operation | None:
    """The caller's operation, deleted or not; None for another account's, as for an unknown id."""
    op = await rt.store.operation(video_id) if operation_owner(video_id) == principal.account_id else None
    return op if op is not None and op.account_id == principal.account_id else None


async def owned_video(rt: Runtime, principal: Principal, video_id: str) -> Operation:
    """The caller's video. A deleted one is gone, as OpenAI's are (the native API still shows it)."""
    op = await owned_operation(rt, principal, video_id)
    if op is None or op.status == DELETED:
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
    fields = await read_fields(
        request,
        rt.settings.max_body_bytes,
        larger_limit=image_body_limit(rt.settings, images=1),
        allows_larger=lambda body: body.get("input_reference") is not None,
    )
    for name, value in list(fields.items()):
        if isinstance(value, Upload):
            if name != "input_reference":
                raise InvalidRequest(f"Unexpected file '{name}'")
            fields[name] = uploaded_image(value.data, value.content_type)
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
    principal = await authenticate_read(request)
    query = request.query_params
    after = None
    if query.get("after"):
        # The page's last video may have been deleted since: it still marks the place.
        last = await owned_operation(rt, principal, query["after"])
        if last is None:
            raise InvalidRequest("'after' must be the id of one of your videos")
        after = history.Cursor(last.created_at_ms, last.id)
    page, cursor = await history.operation_page(
        rt.store,
        principal.account_id,
        status=None,
        app_id=None,
        limit=history.parse_limit(query.get("limit")),
        after=after,
        ascending=parse_order(query.get("order")),
        hide_deleted=True,
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
    if op.status in ACTIVE_STATUSES:
        # One still being made is cancelled and refunded first; one that ended meanwhile is not.
        with contextlib.suppress(Conflict):
            await rt.generations.cancel(principal, op.id)
    await deletion.delete_generation(rt.store, rt.storage, rt.generations.outbox, principal.account_id, op.id)
    return JSONResponse({"id": op.id, "object": "video.deleted", "deleted": True})


routes = [
    Route("/v1/videos", create_video, methods=["POST"]),
    Route("/v1/videos", list_videos, methods=["GET"]),
    Route("/v1/videos/{video_id}", retrieve_video, methods=["GET"]),
    Route("/v1/videos/{video_id}", delete_video, methods=["DELETE"]),
    Route("/v1/videos/{video_id}/content", video_content, methods=["GET"]),
]
