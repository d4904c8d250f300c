"""The SSE response: a feed's frames (encoded by sse-starlette), one task per open stream.

sse-starlette's own EventSourceResponse runs four tasks per connection (sender, heartbeat,
shutdown watcher, disconnect listener): measured on uvicorn + httptools, ~43 KB per idle
connection against ~19 KB here. Here the request's task sends the feed's frames, heartbeats
included (the EventHub asks quiet streams for one), and one small task waits for the client to go
away. Server shutdown ends the feeds through the EventHub; sse-starlette's shutdown watcher could
not see our uvicorn server stop anyway (it hooks uvicorn's signal handling, which we replace).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lunos_events.settings import Settings
from lunos_events.streams.feed import EventFeed

log = logging.getLogger(__name__)


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, feed: EventFeed, settings: Settings) -> None:
        self.feed = feed
        self.status_code = 200
        self.background = None
        self._retry_ms = settings.sse_retry_ms
        self._send_timeout = settings.sse_send_timeout_seconds
        self._task: asyncio.Task[object] | None = None
        self._cut_off = False
        self.on_end: Callable[[], None] | None = None  # run once the stream is over, however it ends
        # no-store: nothing may cache a live stream; X-Accel-Buffering: nginx must pass frames at once.
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(scope, receive, send)
        finally:
            if self.on_end is not None:
                self.on_end()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        if scope.get("method") == "HEAD":
            self.feed.close()
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        self._task = asyncio.current_task()
        self.feed.subscription.on_overflow = self._arm_cut_off
        # Ending the feed makes its frame iterator return, wherever it is waiting.
        watcher = asyncio.ensure_future(_until_disconnected(receive))
        watcher.add_done_callback(lambda _: self.feed.close())
        try:
            await send(start)
            async for frame in self.feed.frames(self._retry_ms):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not self._cut_off or self._task is None:
                raise
            self._task.uncancel()
            log.info("cut off a stalled event stream of account %s", self.feed.subscription.account_id)
        finally:
            self._task = None
            watcher.cancel()
            self.feed.close()

    def _arm_cut_off(self) -> None:
        # The client fell behind by a whole queue. The stream ends at its next frame and the client
        # resumes with Last-Event-ID; if it is stuck sending to a client that stopped reading, it
        # is cancelled once that send has had `sse_send_timeout_seconds`.
        asyncio.get_running_loop().call_later(self._send_timeout, self._cut)

    def _cut(self) -> None:
        if self._task is not None:
            self._cut_off = True
            self._task.cancel()


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
