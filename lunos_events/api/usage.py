"""Usage per app: what `X-App-ID` tracking is for."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.api.auth import runtime
from lunos_events.api.caps import authenticate_read
from lunos_events.errors import InvalidRequest
from lunos_events.services import history
from lunos_events.services.generation_request import parse_app_id


async def usage(request: Request) -> JSONResponse:
    principal = await authenticate_read(request)
    query = request.query_params
    since = history.parse_time(query.get("since"), "since")
    until = history.parse_time(query.get("until"), "until")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("'since' must be before 'until'")
    report = await history.usage(
        runtime(request).store,
        principal.account_id,
        app_id=parse_app_id(query.get("app_id")),
        since_ms=since,
        until_ms=until,
    )
    return JSONResponse(report)


routes = [Route("/v1/usage", usage, methods=["GET"])]
