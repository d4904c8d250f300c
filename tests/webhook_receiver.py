"""A scriptable webhook receiver on a real loopback port, for tests: records every request and
answers with the statuses it is told to (then 200)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lunos_events.serving import ApiServer
from tests.conftest import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str


@dataclass
class RecordingReceiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Responses to give, in order: (status, headers); 200 once they run out.
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # Seconds to stall before answering, per request in order (a slow receiver).
    stalls: list[float] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body(), request.url.path))
        self.arrived.set()
        if self.stalls:
            await asyncio.sleep(self.stalls.pop(0))
        status, headers = self.script.pop(0) if self.script else (200, {})
        return Response(f"status {status}", status_code=status, headers=headers)

    async def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received


@contextlib.asynccontextmanager
async def running_receiver(path: str = "/hooks") -> AsyncIterator[RecordingReceiver]:
    receiver = RecordingReceiver()
    app = Starlette(routes=[Route(path, receiver.handle, methods=["POST"])])
    port = free_port()
    server = ApiServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    receiver.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


def library_signed_headers(secret: str, msg_id: str, body: bytes, at: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers made by the `standardwebhooks` library itself (not our signer)."""
    stamp = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, stamp, body.decode()),
    }
