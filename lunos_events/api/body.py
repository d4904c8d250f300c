"""Reading request bodies: bounded in size, JSON objects only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from lunos_events.errors import InvalidRequest, PayloadTooLarge


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    return await read_json_chunks(request.headers.get("content-length"), request.stream(), limit)


async def read_json_body(content_length: str | None, receive: Receive, limit: int) -> dict[str, Any]:
    """`read_json_object` for a plain ASGI endpoint (api/plain.py), straight from `receive`."""
    _bounded(content_length, b"", limit)  # before anything is read: no `100 Continue` for it
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        # The whole body in one message, as a small request arrives: no stream to set up.
        return _json_object(_bounded(content_length, message.get("body", b""), limit))
    return await read_json_chunks(content_length, _chunks(message, receive), limit)


async def read_json_chunks(
    content_length: str | None, chunks: AsyncIterator[bytes], limit: int
) -> dict[str, Any]:
    _bounded(content_length, b"", limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return _json_object(b"".join(parts))


def _bounded(content_length: str | None, body: bytes, limit: int) -> bytes:
    declared = content_length or ""
    if len(body) > limit or (declared.isdigit() and int(declared) > limit):
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large (at most {limit} bytes)")


async def _chunks(first: dict[str, Any], receive: Receive) -> AsyncIterator[bytes]:
    message = first
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = await receive()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("Request body must be valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body
