"""Bearer API key authentication."""

from __future__ import annotations

from starlette.requests import Request

from lunos_events.errors import Unauthenticated
from lunos_events.services.accounts import Principal


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(request: Request) -> Principal:
    key = bearer_token(request)
    if key is None:
        raise Unauthenticated("Missing API key: send 'Authorization: Bearer <key>'")
    rt = request.app.state.rt
    return await rt.principals.authenticate(rt.reads, key)
