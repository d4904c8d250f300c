"""What the client tests share: running the blocking client beside the live server, route checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import anyio
import httpx
import pytest
from starlette.routing import Route

from lunos_events.api.app import create_app
from lunos_events.settings import Settings

T = TypeVar("T")


async def in_thread(scenario: Callable[[], T]) -> T:
    """Run blocking client code in a worker thread: the server under test shares this event loop."""
    return await anyio.to_thread.run_sync(scenario)


def served_routes() -> set[tuple[str, str]]:
    """(METHOD, path with `{}` for parameters) of every route this build of the app serves."""
    served = set()
    for route in create_app(Settings()).routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                served.add((method, re.sub(r"\{[^}]+\}", "{}", route.path)))
    return served


def requires_route(method: str, path: str) -> pytest.MarkDecorator:
    """Run the test only where the app serves this route (it arrives with another part of the API)."""
    return pytest.mark.skipif(
        (method, path) not in served_routes(), reason=f"this build does not serve {method} {path}"
    )


class RequestLog:
    """httpx event hooks that record what the client sent: observation only, nothing is changed."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def record(self, request: httpx.Request) -> None:
        self.requests.append((request.method, request.url.path))

    async def arecord(self, request: httpx.Request) -> None:
        self.record(request)

    def sync_client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self.record]})

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(event_hooks={"request": [self.arecord]})

    def paths(self, method: str) -> list[str]:
        return [path for m, path in self.requests if m == method]
