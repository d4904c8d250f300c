"""Plain ASGI endpoints, for the busiest route: the status poll.

Starlette runs a function endpoint inside a Request, a layer that wraps `send` to handle exceptions,
and a Response object. On a status poll that machinery cost ~15 µs of the ~110 µs a poll takes served
(bench/http.py). An endpoint here gets the ASGI scope and returns the JSON body, nothing more. Errors
still raise the domain exceptions, which the app's exception middleware turns into the usual
`{"error": ...}` responses.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Receive, Scope, Send

_JSON = (b"content-type", b"application/json")


class JsonEndpoint:
    """An ASGI app answering 200 with the JSON object its handler returns for the request's scope."""

    def __init__(self, handler: Callable[[Scope], Awaitable[dict[str, Any]]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The very encoding of Starlette's JSONResponse, so both kinds of endpoint answer alike.
        body = json.dumps(
            await self.handler(scope), ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), _JSON],
            }
        )
        await send({"type": "http.response.body", "body": body})
