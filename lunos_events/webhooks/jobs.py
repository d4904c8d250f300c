"""The worker side of webhooks: the delivery job, its relay and the per-process HTTP client."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry, cron, func
from arq.cron import CronJob
from arq.worker import Function

from lunos_events.bus.jobs import DELIVER_WEBHOOK, DRAIN_WEBHOOKS
from lunos_events.runtime import Runtime
from lunos_events.settings import Settings
from lunos_events.webhooks.delivery import Courier, deliver
from lunos_events.webhooks.drain import drain, relay_deliveries

log = logging.getLogger(__name__)

COURIER = "webhook_courier"
# Retries are bounded by the retry schedule recorded on the delivery, not by arq's try count.
_UNBOUNDED_TRIES = 10**9
_RETRY_SOON_SECONDS = 5.0


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str, round_: int = 0) -> None:
    rt: Runtime = ctx["rt"]
    courier: Courier = ctx[COURIER]
    try:
        delay = await deliver(rt, courier, delivery_id, round_)
    except Exception:
        # Database trouble and the like: the delivery row is unchanged, so simply try again.
        log.exception("delivering %s failed; retrying", delivery_id)
        delay = _RETRY_SOON_SECONDS
    if delay is not None:
        raise Retry(defer=delay)


async def drain_webhooks(ctx: dict[str, Any], window: int) -> int:
    rt: Runtime = ctx["rt"]
    courier: Courier = ctx[COURIER]
    return await drain(rt, courier, window, max_inflight=rt.settings.worker_max_jobs)


async def relay_webhooks(ctx: dict[str, Any]) -> int:
    rt: Runtime = ctx["rt"]
    return await relay_deliveries(rt)


async def open_webhook_courier(ctx: dict[str, Any]) -> None:
    rt: Runtime = ctx["rt"]
    ctx[COURIER] = Courier.open(rt)


async def close_webhook_courier(ctx: dict[str, Any]) -> None:
    courier: Courier | None = ctx.pop(COURIER, None)
    if courier is not None:
        await courier.aclose()


def webhook_functions(settings: Settings) -> list[Function]:
    return [
        func(
            deliver_webhook,
            name=DELIVER_WEBHOOK,
            max_tries=_UNBOUNDED_TRIES,
            keep_result=0,
            # The send is bounded by the webhook timeout; one second more covers the database.
            # arq also derives from it how long a crashed worker's delivery stays locked.
            timeout=settings.webhook_timeout_seconds + 1,
        ),
        func(
            drain_webhooks,
            name=DRAIN_WEBHOOKS,
            keep_result=0,
            # Claims stop after one webhook timeout, and what was claimed is answered within another.
            timeout=2 * settings.webhook_timeout_seconds + 1,
        ),
    ]


def webhook_cron_jobs() -> list[CronJob]:
    return [cron(relay_webhooks, second=set(range(2, 60, 5)), run_at_startup=True, unique=True)]
