"""Reading request bodies: bounded in size, JSON objects only."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from lunos_events.errors import InvalidRequest, PayloadTooLarge


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    too_large = PayloadTooLarge(f"Request body too large (at most {limit} bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise InvalidRequest("Request body must be valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body
