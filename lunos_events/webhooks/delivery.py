"""Sending one delivery: sign, POST, record the attempt, decide what comes next.

A delivery is a durable row. Its first attempt is made by a drain job (drain.py); retries and
redeliveries by a job of its own (`deliver_webhook`, id `webhook:{delivery}:{round}`) that carries
only its id. A job that runs twice, early, or after a crash re-reads the row and does only what is
still owed, so the receiver sees a message at least once, always with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import select, update
from sqlmodel import col

from lunos_events.faults import crash_point
from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime
from lunos_events.settings import Settings
from lunos_events.store.webhook_models import (
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    WebhookDelivery,
    WebhookEndpoint,
)
from lunos_events.url_guard import TargetNotAllowed, UnsafeTarget, resolve_target
from lunos_events.webhooks.batching import Batcher
from lunos_events.webhooks.endpoints import default_secret, signing_secrets
from lunos_events.webhooks.recorder import AttemptRecorder, Outcome
from lunos_events.webhooks.schedule import parse_retry_after
from lunos_events.webhooks.signing import WebhookSigner

log = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 1024
# Read (and drop) at most this much of a response, so the connection can be reused.
RESPONSE_READ_LIMIT = 64 * 1024
USER_AGENT = "lunos-events-webhooks/1"
# How early a job may run and still send (the worker's poll granularity).
EARLY_TOLERANCE_MS = 50


def build_http_client(settings: Settings) -> aiohttp.ClientSession:
    """One session per worker process: pooled keep-alive connections to the receivers.

    aiohttp rather than httpx here: with hundreds of concurrent deliveries httpx's connection pool
    became the bottleneck (measured by bench/webhooks.py), aiohttp's did not.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.worker_max_jobs, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
        headers={"user-agent": USER_AGENT},
        auto_decompress=False,
    )


_DELIVERY_WITH_ENDPOINT = select(
    *WebhookDelivery.__table__.c,  # type: ignore[attr-defined]  # SQLModel declares no __table__
    col(WebhookEndpoint.enabled),
    col(WebhookEndpoint.secret),
    col(WebhookEndpoint.previous_secret),
    col(WebhookEndpoint.previous_secret_expires_at_ms),
    col(WebhookEndpoint.failing_since_ms),
).outerjoin(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))


class DeliveryLoader:
    """Reads deliveries (with their endpoint's signing state), one query per batch of jobs."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._batcher: Batcher[str, Any] = Batcher(self._load_batch)

    async def load(self, delivery_id: str) -> Any:
        return await self._batcher.call(delivery_id)

    async def load_many(self, ids: list[str]) -> list[Any]:
        return await self._load_batch(ids)

    async def _load_batch(self, ids: list[str]) -> list[Any]:
        async with self._rt.store.reading() as conn:
            rows = (
                await conn.execute(_DELIVERY_WITH_ENDPOINT.where(col(WebhookDelivery.id).in_(set(ids))))
            ).all()
        by_id = {row.id: row for row in rows}
        return [by_id.get(i) for i in ids]


async def send(http: aiohttp.ClientSession, rt: Runtime, row: Any, secrets_: list[str]) -> Outcome:
    body = row.payload.encode()
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        target = await resolve_target(row.url, rt.settings.webhook_allow_private)
    except TargetNotAllowed as exc:
        # Registered while allowed, refused now (its name re-resolved, or the rules changed):
        # retrying on the schedule would only probe the same refused address again.
        return Outcome(None, elapsed(), None, exc.message, final=True)
    except UnsafeTarget as exc:
        return Outcome(None, elapsed(), None, exc.message)  # does not resolve: may, later
    headers = WebhookSigner(secrets_).headers(row.id, int(time.time()), body)
    headers.update({"content-type": "application/json", "host": target.host_header})
    try:
        async with (
            asyncio.timeout(rt.settings.webhook_timeout_seconds),
            http.post(
                target.url,
                data=body,
                headers=headers,
                allow_redirects=False,  # a 3xx is a failure: the endpoint must be updated, not guessed
                server_hostname=target.tls_hostname,
            ) as response,
        ):
            status = response.status
            excerpt = await response.content.read(RESPONSE_EXCERPT_BYTES)
            # Drain a little more so the connection can be reused; past that, drop it.
            drained = len(excerpt)
            while drained <= RESPONSE_READ_LIMIT and (chunk := await response.content.readany()):
                drained += len(chunk)
            if drained > RESPONSE_READ_LIMIT:
                response.close()
            retry_after_header = response.headers.get("retry-after")
    except TimeoutError:
        return Outcome(None, elapsed(), None, f"timed out after {rt.settings.webhook_timeout_seconds:g}s")
    except aiohttp.ClientError as exc:
        return Outcome(None, elapsed(), None, f"{type(exc).__name__}: {exc}"[:500])
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(retry_after_header, time.time())
    return Outcome(
        status,
        elapsed(),
        excerpt.decode("utf-8", "replace"),
        None if 200 <= status < 300 else f"HTTP {status}",
        retry_after,
    )


@dataclass
class Courier:
    """What a worker process needs to deliver: built once at start-up, shared by all jobs."""

    http: aiohttp.ClientSession
    loader: DeliveryLoader
    recorder: AttemptRecorder

    @classmethod
    def open(cls, rt: Runtime) -> Courier:
        return cls(build_http_client(rt.settings), DeliveryLoader(rt), AttemptRecorder(rt))

    async def aclose(self) -> None:
        await self.http.close()


async def deliver(rt: Runtime, courier: Courier, delivery_id: str, round_: int) -> float | None:
    """Make the attempt the delivery is owed now; returns seconds until the next one, or None."""
    row = await courier.loader.load(delivery_id)
    if row is None or row.status != DELIVERY_PENDING or row.round != round_:
        return None
    now = now_ms()
    next_attempt_at_ms: int = row.next_attempt_at_ms
    claimed_until_ms: int = row.claimed_until_ms
    if next_attempt_at_ms > now + EARLY_TOLERANCE_MS:
        return (next_attempt_at_ms - now) / 1000
    if claimed_until_ms > now:
        return (claimed_until_ms - now) / 1000  # a drain is sending it; look again afterwards
    return await attempt(rt, courier, row)


async def attempt(rt: Runtime, courier: Courier, row: Any) -> float | None:
    """Send the delivery once and record the outcome; returns seconds until the next attempt."""
    now = now_ms()
    if row.endpoint_id is not None and not row.enabled:
        reason = "endpoint deleted" if row.secret is None else "endpoint disabled"
        await _finish(rt, row, DELIVERY_FAILED, reason)
        return None
    if row.endpoint_id is None:
        keys = [await default_secret(rt, row.account_id)]
    else:
        keys = signing_secrets(row, now)

    outcome = await send(courier.http, rt, row, keys)
    crash_point(rt.settings, "webhook_sent")
    return await courier.recorder.record(row, outcome)


async def _finish(rt: Runtime, row: Any, status: str, error: str) -> None:
    async with rt.store.transaction() as conn:
        await conn.execute(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id) == row.id, col(WebhookDelivery.round) == row.round)
            .values(status=status, last_error=error)
        )
