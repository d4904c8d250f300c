"""Recording delivery attempts: what an outcome means for the delivery and its endpoint, and the
group commit that writes them.

Hundreds of deliveries finish at about the same time in one worker; written one transaction each
they queue on the database's write lock (SQLite serialises writers). The recorder writes every
attempt that finished meanwhile in ONE transaction, and each job waits for that commit before it
returns, so nothing is acknowledged before it is durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import col

from lunos_events.durations import parse_schedule
from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime
from lunos_events.services.webhook_fanout import bump_webhooks_version
from lunos_events.settings import Settings
from lunos_events.store.transactions import Tx
from lunos_events.store.webhook_models import (
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from lunos_events.webhooks.batching import Batcher
from lunos_events.webhooks.schedule import retry_delay

GONE_REASON = "the endpoint answered 410 Gone"
FAILING_REASON = "failing continuously; re-enable it once the receiver works"


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt gave."""

    status_code: int | None
    latency_ms: int
    response_body: str | None
    error: str | None
    retry_after: float | None = None
    final: bool = False  # no later attempt can succeed (the target is refused): fail at once

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Decision:
    """What follows an attempt."""

    status: str
    error: str | None
    delay: float | None  # seconds until the next attempt, None when there is none
    disable_reason: str | None  # set when the endpoint must be disabled
    stamp: int


def decide(settings: Settings, row: Any, outcome: Outcome, stamp: int) -> Decision:
    if outcome.ok:
        return Decision(DELIVERY_DELIVERED, None, None, None, stamp)
    if outcome.status_code == 410:
        return Decision(DELIVERY_FAILED, "HTTP 410 Gone: endpoint disabled", None, GONE_REASON, stamp)
    if outcome.final:
        return Decision(DELIVERY_FAILED, outcome.error, None, None, stamp)
    failing_since = row.failing_since_ms or stamp
    if row.endpoint_id is not None and stamp - failing_since >= settings.webhook_disable_after_seconds * 1000:
        return Decision(DELIVERY_FAILED, outcome.error, None, FAILING_REASON, stamp)
    schedule = parse_schedule(settings.webhook_retry_schedule)
    delay = retry_delay(schedule, row.attempts + 1, outcome.retry_after)
    return Decision(
        DELIVERY_PENDING if delay is not None else DELIVERY_FAILED, outcome.error, delay, None, stamp
    )


_UPDATE_DELIVERY = (
    update(WebhookDelivery)
    .where(col(WebhookDelivery.id) == bindparam("d_id"), col(WebhookDelivery.round) == bindparam("d_round"))
    .values(
        status=bindparam("d_status"),
        attempts=bindparam("d_attempts"),
        last_error=bindparam("d_error"),
        next_attempt_at_ms=bindparam("d_next"),
        delivered_at_ms=bindparam("d_delivered"),
        claimed_until_ms=0,
    )
)


class AttemptRecorder:
    """Group commit of attempts; one per worker process."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._batcher: Batcher[tuple[Any, Outcome, Decision], None] = Batcher(self._write_batch)

    async def record(self, row: Any, outcome: Outcome) -> float | None:
        """Store the attempt and its consequences; returns the seconds until the next attempt."""
        decision = decide(self._rt.settings, row, outcome, now_ms())
        await self._batcher.call((row, outcome, decision))
        return decision.delay

    async def _write_batch(self, batch: list[tuple[Any, Outcome, Decision]]) -> list[None]:
        async with self._rt.store.transaction() as conn:
            await _write(conn, batch)
        return [None] * len(batch)


async def _write(conn: Tx, batch: list[tuple[Any, Outcome, Decision]]) -> None:
    await conn.execute(
        WebhookAttempt.__table__.insert(),  # type: ignore[attr-defined]  # SQLModel declares no __table__
        [
            {
                "delivery_id": row.id,
                "attempted_at_ms": decision.stamp,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "response_body": outcome.response_body,
                "error": outcome.error,
            }
            for row, outcome, decision in batch
        ],
    )
    await conn.execute(
        _UPDATE_DELIVERY,
        [
            {
                "d_id": row.id,
                "d_round": row.round,
                "d_status": decision.status,
                "d_attempts": row.attempts + 1,
                "d_error": decision.error,
                "d_next": decision.stamp + int((decision.delay or 0) * 1000),
                "d_delivered": decision.stamp if outcome.ok else None,
            }
            for row, outcome, decision in batch
        ],
    )
    for row, outcome, decision in batch:
        if row.endpoint_id is not None:
            await _update_endpoint_health(conn, row, outcome.ok, decision)


async def _update_endpoint_health(conn: Tx, row: Any, ok: bool, decision: Decision) -> None:
    healthy_and_was = ok and row.failing_since_ms is None
    if healthy_and_was and decision.disable_reason is None:
        return  # the common case writes nothing
    endpoint = update(WebhookEndpoint).where(col(WebhookEndpoint.id) == row.endpoint_id)
    if decision.disable_reason is not None:
        await conn.execute(
            endpoint.values(
                enabled=False, disabled_reason=decision.disable_reason, updated_at_ms=decision.stamp
            )
        )
        await conn.execute(bump_webhooks_version(row.account_id))
    elif ok and row.failing_since_ms is not None:
        await conn.execute(endpoint.values(failing_since_ms=None))
    elif not ok and row.failing_since_ms is None:
        await conn.execute(
            endpoint.where(col(WebhookEndpoint.failing_since_ms).is_(None)).values(
                failing_since_ms=decision.stamp
            )
        )
