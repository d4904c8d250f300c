"""The safety net of every request: no bug ends in a reset connection.

Starlette answers an unhandled exception with its 500 handler and then re-raises it, and uvicorn
closes the connection of any request whose application raised: a client lost its keep-alive
connection to each 500. Here such an exception is answered (`{"error": …}`, logged with its
traceback) and goes no further, so the connection stays usable. An exception after the response
has started still propagates: that response is broken, and only closing the connection says so.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lunos_events.api.errors import error_response

log = logging.getLogger(__name__)


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except ClientDisconnect:
            return  # the client went away while its body was read: nobody to answer
        except Exception:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await error_response(500, "Internal server error")(scope, receive, send)
