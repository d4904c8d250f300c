"""The worker side of webhooks: the delivery job, its relay and the per-process HTTP client."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry, cron, func
from arq.cron import CronJob
from arq.worker import Function

from lunos_events.runtime import Runtime
from lunos_events.settings import Settings
from lunos_events.webhooks.delivery import DELIVER_WEBHOOK, build_http_client, deliver, relay_deliveries
from lunos_events.webhooks.recorder import AttemptRecorder

log = logging.getLogger(__name__)

HTTP_CLIENT = "webhook_http"
RECORDER = "webhook_recorder"
# Retries are bounded by the retry schedule recorded on the delivery, not by arq's try count.
_UNBOUNDED_TRIES = 10**9
_RETRY_SOON_SECONDS = 5.0


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str, round_: int = 0) -> None:
    rt: Runtime = ctx["rt"]
    try:
        delay = await deliver(rt, ctx[HTTP_CLIENT], ctx[RECORDER], delivery_id, round_)
    except Exception:
        # Database trouble and the like: the delivery row is unchanged, so simply try again.
        log.exception("delivering %s failed; retrying", delivery_id)
        delay = _RETRY_SOON_SECONDS
    if delay is not None:
        raise Retry(defer=delay)


async def relay_webhooks(ctx: dict[str, Any]) -> int:
    return await relay_deliveries(ctx["rt"])


async def open_webhook_client(ctx: dict[str, Any]) -> None:
    ctx[HTTP_CLIENT] = build_http_client(ctx["rt"].settings)
    ctx[RECORDER] = AttemptRecorder(ctx["rt"])


async def close_webhook_client(ctx: dict[str, Any]) -> None:
    client = ctx.pop(HTTP_CLIENT, None)
    if client is not None:
        await client.close()


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
        )
    ]


def webhook_cron_jobs() -> list[CronJob]:
    return [cron(relay_webhooks, second=set(range(2, 60, 5)), run_at_startup=True, unique=True)]
