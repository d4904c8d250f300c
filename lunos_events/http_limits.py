"""Bounds on what one connection may make the API server hold, before any application code runs.

uvicorn's httptools protocol has no limit on a request's head (a 128 MB header was read whole and
answered 200) and no timeout while a head or body trickles in: its only timer is keep-alive, armed
after a response, and a single byte disarms it. So one client could hold a file descriptor, and as
much memory as it liked, for as long as it liked. This protocol (uvicorn's, subclassed) adds:

- a bound on the head's size (request line + headers) and on the number of headers: 431;
- a deadline for the head, from the connection's start (or a keep-alive request's first byte):
  408 if part of a head came, else the idle connection is closed;
- a deadline for the body, from the end of the head: 408. A body-less request (every event
  stream) completes with its head, so long responses are never timed; only reading is.
- a cap on open connections (event streams included): past it a new one is closed at once.

Each refusal closes the connection. Errors are JSON `{"error": …}` like the application's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lunos_events.settings import Settings

REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class HttpLimits:
    max_head_bytes: int
    max_headers: int
    head_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_head_bytes=settings.http_max_head_bytes,
            max_headers=settings.http_max_headers,
            head_timeout_seconds=settings.http_head_timeout_seconds,
            body_timeout_seconds=settings.http_body_timeout_seconds,
            max_connections=settings.http_max_connections,
        )


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the parser stops, and uvicorn calls send_400_response."""


class BoundedHttpProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # waiting for, or reading, a request's head
        self._head_bytes = 0  # bytes received while reading the head
        self._head_size = 0  # of the request line's target and the headers parsed so far
        self._header_count = 0
        self._refusal: tuple[int, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.transport.close()
            return
        self._arm(self.limits.head_timeout_seconds, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._deadline is None:  # the first byte of a keep-alive connection's next request
                self._arm(self.limits.head_timeout_seconds, self._head_timed_out)
        super().data_received(data)
        # A head still unfinished past the bound (one huge header still arriving, which the parser
        # holds until it ends): checked after parsing, so a read that holds a whole head and the
        # start of its body is not refused here.
        if self._reading_head and self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, self._head_too_large())

    def on_message_begin(self) -> None:
        self._header_count = 0
        self._head_size = 0
        if self._deadline is None:  # a pipelined request's head, or one after idle bytes
            self._arm(self.limits.head_timeout_seconds, self._head_timed_out)
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._grow_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = (431, f"Too many request headers (at most {self.limits.max_headers})")
            raise _HeadTooLarge
        self._grow_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _grow_head(self, size: int) -> None:
        # Counted as parsed: a head that arrives in one read (up to 256 KiB) is never seen unfinished.
        self._head_size += size
        if self._head_size > self.limits.max_head_bytes:
            self._refusal = (431, self._head_too_large())
            raise _HeadTooLarge

    def _head_too_large(self) -> str:
        return f"Request head too large (at most {self.limits.max_head_bytes} bytes)"

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._arm(self.limits.body_timeout_seconds, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request its parser refused: plain text there, JSON here.
        status, message = self._refusal or (400, "Invalid HTTP request")
        self._refuse(status, message)

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self._head_bytes == 0:
            self._refuse(None, "")  # an idle connection: nothing was asked, nothing to answer
        else:
            self._refuse(408, "Request head not received in time")

    def _body_timed_out(self) -> None:
        self._deadline = None
        # The application may have answered already (a 401 needs no body): then the connection
        # just closes. If it is still reading, it sees the client disconnect; what it sends later
        # is dropped.
        answered = self.cycle is not None and self.cycle.response_started
        self._refuse(None if answered else 408, "Request body not received in time")

    def _refuse(self, status: int | None, message: str) -> None:
        """Answer with `status` (unless it is None or a response is being sent) and close."""
        self._disarm()
        if self.transport.is_closing():
            return
        # A response still being sent (an event stream, before the next request's head came) can
        # only be ended by closing; anything written now would land inside it.
        sending = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if status is not None and not sending:
            body = json.dumps({"error": message}).encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (status, REASONS[status], len(body), body)
            )
        self.transport.close()

    def _arm(self, seconds: float, action: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, action)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def bounded_protocol(limits: HttpLimits) -> type[BoundedHttpProtocol]:
    """uvicorn's `http` protocol class for a server with these limits."""
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), {"limits": limits})
