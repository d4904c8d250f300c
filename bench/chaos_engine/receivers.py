"""Webhook receivers for the chaos run: real HTTP servers on loopback, each with a behaviour.

- `ok`: answers 204 at once (the one taken down for a while by a fault);
- `slow`: answers after a pause shorter than the delivery timeout;
- `flaky`: answers 500 until `recover_at`, then 204;
- `gone`: answers 410 Gone, which disables its endpoint.
Every request is recorded with its arrival time and its signature checked with the endpoint's secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lunos_events.child_processes import free_port
from lunos_events.webhooks import WebhookVerificationError, verify


@dataclass
class Receipt:
    at: float
    webhook_id: str
    body: bytes
    status: int
    signed: bool


@dataclass
class Receiver:
    kind: str
    slow_seconds: float = 1.5
    recover_at: float = 0.0  # flaky: monotonic time it starts answering 2xx
    port: int = field(default_factory=free_port)
    secrets: list[str] = field(default_factory=list)  # its endpoints' secrets
    receipts: list[Receipt] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{self.kind}"

    def _signed(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                verify(body, headers, secret)
                return True
        return False

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if self.kind == "slow":
            await asyncio.sleep(self.slow_seconds)
        if self.kind == "gone":
            status = 410
        elif self.kind == "flaky" and time.monotonic() < self.recover_at:
            status = 500
        else:
            status = 204
        headers = dict(request.headers)
        self.receipts.append(
            Receipt(
                time.monotonic(), headers.get("webhook-id", ""), body, status, self._signed(body, headers)
            )
        )
        return Response(status_code=status)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hooks/{kind}", self.handle, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None

    def delivered(self) -> dict[str, list[Receipt]]:
        """The 2xx receipts by webhook-id."""
        by_id: dict[str, list[Receipt]] = {}
        for receipt in self.receipts:
            by_id.setdefault(receipt.webhook_id, []).append(receipt)
        return by_id


def operation_of(receipt: Receipt) -> tuple[str, str]:
    message = json.loads(receipt.body)
    return message["data"]["id"], message["type"]
