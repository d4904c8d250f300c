"""Event streams without I/O: parsing SSE lines, and the state that lets a stream resume.

The sync and async clients feed lines in and ask what to do after a disconnect; this module
decides. A resumed connection sends `Last-Event-ID`, so the server replays exactly what was missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx

from lunos_client.calls import Call
from lunos_client.errors import APIConnectionError
from lunos_client.models import VideoEvent
from lunos_client.transport import RetryPolicy

EVENT_TYPE_PREFIX = "video."


class Tick:
    """Yielded to internal readers on heartbeats and reconnects, so they can check a deadline."""


TICK = Tick()


@dataclass
class SseDecoder:
    """Parses Server-Sent Events line by line, as EventSource does (blank line ends an event)."""

    retry_ms: int | None = None
    _id: str | None = None
    _type: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str | None, str, str] | Tick | None:
        """`(id, type, data)` when the line ends an event; TICK for a comment (a heartbeat)."""
        if line == "":
            if not self._data:
                self._id, self._type = None, "message"
                return None
            event = (self._id, self._type, "\n".join(self._data))
            self._id, self._type, self._data = None, "message", []
            return event
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            return TICK
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "event":
            self._type = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


@dataclass
class StreamSession:
    """One logical stream across any number of connections.

    `ends_on_final`: an operation's stream is over once its final status arrived (the server then
    closes it, and answers 204 to a reconnect); the account stream never is.
    """

    call: Call[None]
    policy: RetryPolicy
    last_event_id: int | None = None
    ends_on_final: bool = False
    finished: bool = False
    read_timeout: Callable[[], float] | None = None  # asked at each (re)connect
    _decoder: SseDecoder = field(default_factory=SseDecoder)
    _idle_connections: int = 0  # consecutive connections that brought nothing
    _heard: bool = False

    def next_call(self) -> Call[None]:
        self._decoder = SseDecoder(retry_ms=self._decoder.retry_ms)
        self._heard = False
        call = self.call
        if self.read_timeout is not None:
            call = replace(call, timeout=self.read_timeout())
        if self.last_event_id is None:
            return call
        return replace(call, headers={**call.headers, "Last-Event-ID": str(self.last_event_id)})

    def opened(self, response: httpx.Response) -> None:
        if response.status_code == 204:
            self.finished = True  # the server says: nothing more will come, do not reconnect

    def feed(self, line: str) -> VideoEvent | Tick | None:
        self._heard = True
        item = self._decoder.feed(line)
        if item is None or isinstance(item, Tick):
            return item
        event_id, event_type, data = item
        if event_id is None and not event_type.startswith(EVENT_TYPE_PREFIX):
            return None  # not an event of this API
        event = VideoEvent.from_sse(event_id, event_type, data)
        if event.id is not None:
            # A transient event (a progress report, no id) is never replayed: a resume goes on
            # after the last event that had an id, as EventSource keeps its Last-Event-ID.
            self.last_event_id = event.id
        if self.ends_on_final and event.status.is_final:
            self.finished = True
        return event

    def reconnect_delay(self, failure: httpx.TransportError | None) -> float:
        """How long to wait before reconnecting; raises APIConnectionError when it is hopeless."""
        self._idle_connections = 0 if self._heard else self._idle_connections + 1
        if self._idle_connections > self.policy.config.max_retries:
            reason = f"{type(failure).__name__}: {failure}" if failure else "closed without any data"
            raise APIConnectionError(f"event stream {self.call.url} keeps failing ({reason})")
        if self._decoder.retry_ms is not None and self._idle_connections == 0:
            return self._decoder.retry_ms / 1000  # the server's own advice, as EventSource follows it
        return self.policy.backoff(self._idle_connections)
