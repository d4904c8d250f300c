"""The one place where errors become HTTP responses: always `{"error": message}`, never a bare 500."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from lunos_events import errors
from lunos_events.api.headers import refusal_headers
from lunos_events.store.availability import database_unavailable

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.LunosError], int] = {
    errors.InvalidRequest: 400,
    errors.Unauthenticated: 401,
    errors.InsufficientBalance: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.ProviderStartFailed: 502,
    errors.ServiceUnavailable: 503,
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def status_for(exc: errors.LunosError) -> int:
    """The HTTP status of a domain error."""
    return next(STATUS_BY_ERROR[cls] for cls in type(exc).__mro__ if cls in STATUS_BY_ERROR)


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.LunosError)
    status = status_for(exc)
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, errors.RateLimited):
        headers = refusal_headers(exc)
    return error_response(status, exc.message, headers)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


async def handle_redis_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unavailable during %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "Service temporarily unavailable, try again shortly", {"Retry-After": "5"})


async def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database out of reach (restarting: a dead connection, a refused one) is a 503; the pool
    reconnects behind it. `exc` is a DBAPIError, or a ConnectionError the driver raised as is."""
    if not database_unavailable(exc):
        return await handle_unexpected_error(request, exc)
    log.warning("database connection lost during %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "Service temporarily unavailable, try again shortly", {"Retry-After": "1"})


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "Internal server error")


EXCEPTION_HANDLERS = {
    errors.LunosError: handle_domain_error,
    HTTPException: handle_http_error,
    RedisError: handle_redis_error,
    DBAPIError: handle_database_error,
    ConnectionError: handle_database_error,
    Exception: handle_unexpected_error,
}
