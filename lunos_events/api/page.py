"""The live page: submit a prompt and watch its status arrive over EventSource (plain HTML + JS)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def live_page(request: Request) -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


# The console holds the admin token: nothing but this origin's own files may run or load there.
CONSOLE_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


async def admin_console(request: Request) -> FileResponse:
    """The operator console; it is useful only with LUNOS_ADMIN_TOKEN set (the admin API says so)."""
    return FileResponse(
        STATIC_DIR / "admin.html",
        media_type="text/html",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONSOLE_POLICY,
            "Referrer-Policy": "no-referrer",
        },
    )


routes = [
    Route("/", live_page, methods=["GET"]),
    Route("/admin", admin_console, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
]
