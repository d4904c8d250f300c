"""Reference receiver for lunos-events webhooks (Starlette + `lunos_events.webhooks.verify`).

    WEBHOOK_SECRET=whsec_... PORT=8788 python receiver.py

What a receiver must do, in order:
  1. read the RAW body (verify the exact bytes that were signed, never re-serialised JSON);
  2. verify the signature and the timestamp (`verify` refuses anything older or newer than
     5 minutes, which stops replays); answer 400 on failure;
  3. de-duplicate on `webhook-id`: a message may arrive more than once (retries, a crash after
     sending), always with the same id;
  4. answer 2xx at once and do the real work afterwards: a slow answer (15 s) counts as a failure
     and is retried.
WEBHOOK_SECRET may hold several space-separated secrets while you rotate on your side.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lunos_events.webhooks import WebhookEvent, WebhookVerificationError, verify

MAX_BODY_BYTES = 1024 * 1024
SEEN_LIMIT = 100_000


class Deduplicator:
    """Remembers recent webhook ids. In memory for the example; a real backend keeps processed ids
    in its database (a unique key) so duplicates are caught across restarts too."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def first_time(self, webhook_id: str) -> bool:
        if webhook_id in self._seen:
            return False
        self._seen[webhook_id] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


async def handle_event(event: WebhookEvent) -> None:
    """Your work goes here. It runs after the answer was sent."""
    line = {"id": event.id, "type": event.type, "timestamp": event.timestamp.isoformat(), "data": event.data}
    print(json.dumps(line), flush=True)


def create_receiver(secrets: list[str]) -> Starlette:
    seen = Deduplicator()
    work: asyncio.Queue[WebhookEvent] = asyncio.Queue()

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            event = verify(body, request.headers, secrets)
        except WebhookVerificationError as exc:
            return JSONResponse({"error": f"invalid webhook: {exc}"}, status_code=400)
        if not seen.first_time(event.id):
            return JSONResponse({"duplicate": True})
        work.put_nowait(event)
        return JSONResponse({"received": True})

    async def process() -> None:
        while True:
            event = await work.get()
            try:
                await handle_event(event)
            except Exception as exc:  # one bad event must not stop the others
                print(f"handling {event.id} failed: {exc!r}", file=sys.stderr, flush=True)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker = asyncio.create_task(process())
        yield
        worker.cancel()

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    secrets = os.environ.get("WEBHOOK_SECRET", "").split()
    if not secrets:
        sys.exit("set WEBHOOK_SECRET to the endpoint's whsec_... secret")
    uvicorn.run(
        create_receiver(secrets),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8788")),
        log_level="warning",
    )


if __name__ == "__main__":
    main()
