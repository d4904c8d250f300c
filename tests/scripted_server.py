"""A real HTTP server on loopback that answers from a script: the 429s, 503s and slow answers that
the service only gives under load or outages, for testing how the client retries."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lunos_events.serving import ApiServer
from tests.conftest import free_port


@dataclass
class Reply:
    status: int = 200
    body: dict = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (longer than the client's timeout = a network error)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    url: str
    replies: list[Reply]
    seen: list[Seen] = field(default_factory=list)  # every request, in order

    async def respond(self, request: Request) -> Response:
        self.seen.append(
            Seen(
                request.method,
                request.url.path,
                dict(request.query_params),
                {k.lower(): v for k, v in request.headers.items()},
                await request.body(),
            )
        )
        reply = self.replies.pop(0) if self.replies else Reply(500, {"error": "script exhausted"})
        if reply.delay:
            await anyio.sleep(reply.delay)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


@contextlib.asynccontextmanager
async def scripted_server(*replies: Reply) -> AsyncIterator[ScriptedServer]:
    port = free_port()
    script = ScriptedServer(f"http://127.0.0.1:{port}", list(replies))
    app = Starlette(routes=[Route("/{path:path}", script.respond, methods=["GET", "POST"])])
    server = ApiServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:
            await anyio.sleep(0.01)
        try:
            yield script
        finally:
            server.should_exit = True
