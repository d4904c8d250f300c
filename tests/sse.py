"""Reading Server-Sent Events in tests: a small parser over a real streaming HTTP response."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from lunos_events.runtime import Runtime
from lunos_events.services.events import StoredEvent, append_event


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def seq(self) -> int:
        assert self.id is not None
        return int(self.id)


@dataclass
class SseReader:
    """Frames of one response, parsed as EventSource would (fields per line, blank line ends one)."""

    response: httpx.Response
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.response.aiter_lines()

    async def next(self, timeout: float = 15) -> SseEvent | None:
        """The next event with data, or None when the stream ended."""
        fields: dict[str, str] = {}
        data: list[str] = []
        with anyio.fail_after(timeout):
            async for line in self._lines:
                if line == "":
                    if data:
                        return SseEvent(fields.get("id"), fields.get("event"), "\n".join(data))
                    fields.clear()
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    self.comments.append(value)
                elif name == "data":
                    data.append(value)
                elif name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value
        return None

    async def take(self, count: int, timeout: float = 15) -> list[SseEvent]:
        events = []
        for _ in range(count):
            event = await self.next(timeout)
            assert event is not None, f"the stream ended after {len(events)} of {count} events"
            events.append(event)
        return events

    async def rest(self, timeout: float = 15) -> list[SseEvent]:
        """Every remaining event, until the server ends the stream."""
        events = []
        while (event := await self.next(timeout)) is not None:
            events.append(event)
        return events


async def record_events(
    rt: Runtime,
    account_id: str,
    count: int,
    *,
    operation_id: str = "video-op:x:1",
    app_id: str | None = None,
    padding: int = 0,
    publish: bool = True,
) -> list[StoredEvent]:
    """Store `count` status changes as the lifecycle does (one transaction each) and publish them."""
    events = []
    for _ in range(count):
        async with rt.store.transaction() as tx:
            event = await append_event(
                tx,
                account_id=account_id,
                operation_id=operation_id,
                app_id=app_id,
                type="video.pending",
                data={
                    "id": operation_id,
                    "status": "pending",
                    **({"padding": "x" * padding} if padding else {}),
                },
            )
        if publish:
            await rt.generations.outbox.release(event)
        events.append(event)
    return events
