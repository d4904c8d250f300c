"""Reading request bodies: bounded in size, JSON objects only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from lunos_events.errors import InvalidRequest, PayloadTooLarge


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    _check_declared(request.headers.get("content-length"), limit)
    return await _read_chunks(request.stream(), limit)


async def read_json_body(content_length: str | None, receive: Receive, limit: int) -> dict[str, Any]:
    """`read_json_object` for a plain ASGI endpoint (api/plain.py), straight from `receive`."""
    _check_declared(content_length, limit)  # before anything is read: no `100 Continue` for it
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        # The whole body in one message, as a small request arrives: no stream to set up.
        body = message.get("body", b"")
        if len(body) > limit:
            raise _too_large(limit)
        return _json_object(body)
    return await _read_chunks(_chunks(message, receive), limit)


def _check_declared(content_length: str | None, limit: int) -> None:
    declared = content_length or ""
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def _read_chunks(chunks: AsyncIterator[bytes], limit: int) -> dict[str, Any]:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return _json_object(b"".join(parts))


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
