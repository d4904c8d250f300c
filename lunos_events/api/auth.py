"""Bearer API key authentication."""

from __future__ import annotations

from starlette.requests import Request

from lunos_events.errors import InvalidRequest, Unauthenticated
from lunos_events.runtime import Runtime
from lunos_events.services.accounts import Principal


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def authorization(request: Request) -> str | None:
    """The one `Authorization` header; two of them are refused rather than one silently chosen."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise InvalidRequest("Send one Authorization header, not several")
    return values[0] if values else None


def bearer_token(request: Request) -> str | None:
    return bearer_key(authorization(request))


def bearer_key(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header value; None for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(request: Request) -> Principal:
    return await authenticate_header(runtime(request), authorization(request))


async def authenticate_header(rt: Runtime, authorization: str | None) -> Principal:
    key = bearer_key(authorization)
    if key is None:
        raise Unauthenticated("Missing API key: send 'Authorization: Bearer <key>'")
    return await rt.principals.authenticate(rt.store, key)
