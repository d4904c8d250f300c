"""Liveness, and locally stored videos."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from lunos_events.api.errors import error_response
from lunos_events.storage.local import LocalStorage


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def media(request: Request) -> Response:
    storage = request.app.state.rt.storage
    path = storage.path_for(request.path_params["key"]) if isinstance(storage, LocalStorage) else None
    if path is None or not path.is_file():
        return error_response(404, "Video not found")
    # Keys are unguessable and never rewritten with different content, so caches may keep them.
    return FileResponse(
        path, media_type="video/mp4", headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/media/{key:path}", media, methods=["GET"]),
]
