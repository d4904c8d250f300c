"""Plain ASGI endpoints, for the busiest routes: the status poll and the submit.

Starlette runs a function endpoint inside a Request, a layer that wraps `send` to handle exceptions,
and a Response object. On a status poll that machinery cost ~15 µs of the ~110 µs a poll takes served
(bench/http.py). An endpoint here gets the ASGI scope (and `receive`, for a body) and returns the
JSON body with any extra headers, nothing more. Errors still raise the domain exceptions, which the
app's exception middleware turns into the usual `{"error": ...}` responses.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

_JSON = (b"content-type", b"application/json")
# The very encoding of Starlette's JSONResponse, so both kinds of endpoint answer alike; built once,
# as json.dumps with options would build it on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
NO_HEADERS: Mapping[str, str] = {}

Reply = tuple[dict[str, Any], Mapping[str, str]]


class JsonEndpoint:
    """An ASGI app answering 200 with the JSON object (and headers) its handler returns."""

    def __init__(self, handler: Callable[[Scope, Receive], Awaitable[Reply]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply, headers = await self.handler(scope, receive)
        body = _ENCODER.encode(reply).encode("utf-8")
        raw_headers = [(b"content-length", str(len(body)).encode()), _JSON]
        raw_headers += [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
