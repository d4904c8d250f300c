"""Live status over Server-Sent Events, and the stream tokens browsers use to open them."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lunos_events.api.auth import authenticate, bearer_token, runtime
from lunos_events.api.body import read_json_object
from lunos_events.api.caps import authenticate_read
from lunos_events.api.sse import EventStreamResponse
from lunos_events.errors import InvalidRequest, NotFound, Unauthenticated
from lunos_events.ids import operation_owner
from lunos_events.numerals import ascii_int
from lunos_events.services import accounts
from lunos_events.services.accounts import Principal
from lunos_events.services.generation_request import parse_app_id
from lunos_events.services.stream_slots import StreamSlots
from lunos_events.streams.feed import (
    OPERATION_NOT_FOUND,
    open_account_feed,
    open_operation_feed,
)
from lunos_events.streams.tokens import INVALID_TOKEN, OPERATION, StreamGrant, StreamTokenSigner

log = logging.getLogger(__name__)

MISSING_CREDENTIALS = "Missing credentials: send 'Authorization: Bearer <key>' or a stream token in ?token="


@dataclass(frozen=True)
class StreamAccess:
    account_id: str
    grant: StreamGrant | None  # None: an API key, which may read every stream of its account
    key_hash: str  # the API key's, or that of the key that minted the token: revoking it ends the stream
    tier: str | None = None  # known with an API key; a token's account is looked up when needed


async def stream_access(request: Request) -> StreamAccess:
    """An API key (services) or a stream token in ?token= (browsers); never an API key in the URL."""
    if bearer_token(request) is not None:
        principal = await authenticate(request)
        return StreamAccess(principal.account_id, None, principal.key_hash, principal.tier)
    token = request.query_params.get("token")
    if not token:
        raise Unauthenticated(MISSING_CREDENTIALS)
    grant = signer(request).verify(token)
    # A token is worth no more than the key that minted it: a revoked key's tokens fail.
    rt = runtime(request)
    minter = await rt.principals.authenticate_hash(rt.store, grant.key_hash, INVALID_TOKEN)
    if minter.account_id != grant.account_id:
        raise Unauthenticated(INVALID_TOKEN)
    return StreamAccess(grant.account_id, grant, grant.key_hash, minter.tier)


@contextlib.asynccontextmanager
async def stream_slot(
    request: Request, access: StreamAccess
) -> AsyncIterator[Callable[[EventStreamResponse], EventStreamResponse]]:
    """Hold one of the account's stream slots (429 when its tier's are all held) for the response
    the block returns; given back at once if the block ends any other way."""
    rt = runtime(request)
    slots: StreamSlots = request.app.state.stream_slots
    tier = access.tier or (await accounts.get_account(rt.store, access.account_id)).tier
    slot = await slots.take(access.account_id, rt.settings.tier_limits(tier))
    handed_over = False

    def hold(response: EventStreamResponse) -> EventStreamResponse:
        nonlocal handed_over
        handed_over = True
        response.on_end = lambda: slots.release(slot)
        return response

    try:
        yield hold
    finally:
        if not handed_over:
            slots.release(slot)


def signer(request: Request) -> StreamTokenSigner:
    tokens: StreamTokenSigner = request.app.state.stream_tokens
    return tokens


def last_event_id(request: Request) -> int | None:
    """`Last-Event-ID` (sent by EventSource on reconnect), else `?last_event_id=` for a first connect."""
    value = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if value is None or value == "":
        return None
    event_id = ascii_int(value.strip())
    if event_id is None:
        raise InvalidRequest("Last-Event-ID must be an event id (a non-negative integer)")
    return event_id


def requested_app(request: Request) -> str | None:
    value = request.headers.get("x-app-id")
    return parse_app_id(value if value is not None else request.query_params.get("app_id"))


async def operation_events(request: Request) -> Response:
    op_id = request.path_params["operation_id"]
    access = await stream_access(request)
    if access.grant is not None and access.grant.kind == OPERATION:
        access.grant.allow_operation(op_id, None)  # a token for another operation: 403 before any I/O
    if operation_owner(op_id) != access.account_id:
        raise NotFound(OPERATION_NOT_FOUND)
    rt = runtime(request)
    resume = last_event_id(request)
    async with stream_slot(request, access) as hold:
        feed = await open_operation_feed(
            request.app.state.hub, rt.store, access.account_id, op_id, resume, key_hash=access.key_hash
        )
        if feed is None:
            # The client already has the final status: 204 tells EventSource not to reconnect.
            return Response(status_code=204)
        try:
            if access.grant is not None:
                access.grant.allow_operation(op_id, feed.app_id)
            if feed.first is not None:
                feed.first = await rt.generations.current_state(feed.first)
        except BaseException:
            feed.close()
            raise
        return hold(EventStreamResponse(feed, rt.settings))


async def account_events(request: Request) -> Response:
    access = await stream_access(request)
    app_id = requested_app(request)
    if access.grant is not None:
        app_id = access.grant.account_stream_app(app_id)
    rt = runtime(request)
    resume = last_event_id(request)
    async with stream_slot(request, access) as hold:
        feed = await open_account_feed(
            request.app.state.hub, rt.store, access.account_id, app_id, resume, key_hash=access.key_hash
        )
        return hold(EventStreamResponse(feed, rt.settings))


async def create_stream_token(request: Request) -> JSONResponse:
    principal = await authenticate_read(request)
    rt = runtime(request)
    body: dict[str, Any] = {}
    if request.headers.get("content-length", "0") != "0" or "chunked" in request.headers.get(
        "transfer-encoding", ""
    ):
        body = await read_json_object(request, rt.settings.max_body_bytes)
    header_app = request.headers.get("x-app-id")
    app_id = parse_app_id(header_app if header_app is not None else body.get("app_id"))
    tokens = signer(request)
    expires_at = int(time.time()) + tokens.ttl_seconds
    token = tokens.for_account(
        principal.account_id, app_id, key_hash=principal.key_hash, expires_at=expires_at
    )
    return JSONResponse(
        {
            "token": token,
            "expires_at": expires_at,
            "app_id": app_id,
            "events_url": f"{rt.settings.resolved_public_base_url()}/v1/video/events?token={token}",
        }
    )


def operation_events_url(request: Request, principal: Principal, op_id: str) -> str:
    """The `events_url` of submit and status responses: the operation's stream, with a fresh token."""
    token = signer(request).for_operation(principal.account_id, op_id, key_hash=principal.key_hash)
    base = runtime(request).settings.resolved_public_base_url()
    return f"{base}/v1/video/generations/{op_id}/events?token={token}"


routes = [
    Route("/v1/video/generations/{operation_id}/events", operation_events, methods=["GET"]),
    Route("/v1/video/events", account_events, methods=["GET"]),
    Route("/v1/video/stream-tokens", create_stream_token, methods=["POST"]),
]
