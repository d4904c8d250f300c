"""What the client tests share: running the blocking client beside the live server, route checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import httpx

T = TypeVar("T")


async def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)


async def in_thread(scenario: Callable[[], T]) -> T:
    """Run blocking client code in a worker thread: the server under test shares this event loop."""
    return await anyio.to_thread.run_sync(scenario)


class RequestLog:
    """httpx event hooks that record what the client sent: observation only, nothing is changed."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.with_api_key: list[tuple[str, str, bool]] = []  # (origin, path, sent the API key)

    def record(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.path))
        origin = f"{request.url.host}:{request.url.port}"
        self.with_api_key.append((origin, request.url.path, "authorization" in request.headers))

    async def arecord(self, request: httpx.Request) -> None:
        self.record(request)

    def sync_client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self.record]})

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(event_hooks={"request": [self.arecord]})

    def paths(self, method: str) -> list[str]:
        return [path for m, path in self.requests if m == method]
