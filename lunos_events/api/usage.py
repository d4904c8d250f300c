"""Usage per app: what `X-App-ID` tracking is for."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.auth import runtime
from lunos_events.api.caps import authenticate_read
from lunos_events.errors import InvalidRequest
from lunos_events.services import history
from lunos_events.services.generation_request import parse_app_id


async def usage_report(request: Request, account_id: str | None) -> dict[str, Any]:
    """The usage report the query asks for: one account's, or every account's (None, admin only)."""
    query = request.query_params
    since = history.parse_time(query.get("since"), "since")
    until = history.parse_time(query.get("until"), "until")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("'since' must be before 'until'")
    return await history.usage(
        runtime(request).store,
        account_id,
        app_id=parse_app_id(query.get("app_id")),
        since_ms=since,
        until_ms=until,
        group_by=history.parse_group_by(query.get("group_by")),
    )


async def usage(request: Request) -> JSONResponse:
    principal = await authenticate_read(request)
    return JSONResponse(await usage_report(request, principal.account_id))


routes = [Route("/v1/usage", usage, methods=["GET"])]
