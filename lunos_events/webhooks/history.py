"""The delivery log (every attempt of every delivery), redelivery and test events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from lunos_events.errors import Conflict, InvalidRequest
from lunos_events.ids import now_ms
from lunos_events.json_text import compact_json
from lunos_events.runtime import Runtime
from lunos_events.services.history import parse_limit
from lunos_events.services.webhook_fanout import delivery_row, webhook_payload
from lunos_events.store.webhook_models import (
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    WebhookAttempt,
    WebhookDelivery,
)
from lunos_events.webhooks.endpoints import load_endpoint, load_owned

TEST_EVENT_TYPE = "webhook.test"
DELIVERY_NOT_FOUND = "Webhook delivery not found"
MAX_PAGE = 100


def attempt_view(row: Any) -> dict[str, Any]:
    return {
        "attempted_at_ms": row.attempted_at_ms,
        "status_code": row.status_code,
        "latency_ms": row.latency_ms,
        "response_body": row.response_body,
        "error": row.error,
    }


def delivery_view(row: Any, attempts: Sequence[Any] | None = None) -> dict[str, Any]:
    view = {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "url": row.url,
        "event_type": row.event_type,
        "event_seq": row.event_seq,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at_ms": row.next_attempt_at_ms if row.status == DELIVERY_PENDING else None,
        "last_error": row.last_error,
        "created_at_ms": row.created_at_ms,
        "delivered_at_ms": row.delivered_at_ms,
    }
    if attempts is not None:
        view["payload"] = json.loads(row.payload)
        view["attempt_log"] = [attempt_view(a) for a in attempts]
    return view


def page_limit(value: str | None) -> int:
    return parse_limit(value, default=50, maximum=MAX_PAGE)


async def endpoint_deliveries(
    rt: Runtime, account_id: str, endpoint_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The endpoint's most recent deliveries first."""
    await load_endpoint(rt, account_id, endpoint_id)
    async with rt.store.reading() as conn:
        rows = (
            await conn.execute(
                select(WebhookDelivery)
                .where(
                    col(WebhookDelivery.endpoint_id) == endpoint_id,
                    col(WebhookDelivery.account_id) == account_id,
                )
                .order_by(col(WebhookDelivery.created_at_ms).desc(), col(WebhookDelivery.id))
                .limit(limit)
            )
        ).all()
    return [delivery_view(r) for r in rows]


DELIVERY_STATUSES = (DELIVERY_PENDING, DELIVERY_DELIVERED, DELIVERY_FAILED)


def parse_delivery_status(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in DELIVERY_STATUSES:
        raise InvalidRequest(f"'status' must be one of: {', '.join(DELIVERY_STATUSES)}")
    return value


async def recent_deliveries(
    rt: Runtime, *, account_id: str | None, status: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    """Deliveries of every account (or one), most recent first: what an operator scans for failures."""
    query = select(WebhookDelivery).order_by(
        col(WebhookDelivery.created_at_ms).desc(), col(WebhookDelivery.id)
    )
    if account_id is not None:
        query = query.where(col(WebhookDelivery.account_id) == account_id)
    if status is not None:
        query = query.where(col(WebhookDelivery.status) == status)
    rows = await rt.store.all(query.limit(limit))
    return [{**delivery_view(r), "account_id": r.account_id} for r in rows]


async def _delivery_row(rt: Runtime, account_id: str, delivery_id: str) -> Any:
    return await load_owned(rt, WebhookDelivery, delivery_id, account_id, DELIVERY_NOT_FOUND)


async def get_delivery(rt: Runtime, account_id: str, delivery_id: str) -> dict[str, Any]:
    row = await _delivery_row(rt, account_id, delivery_id)
    async with rt.store.reading() as conn:
        attempts = (
            await conn.execute(
                select(WebhookAttempt)
                .where(col(WebhookAttempt.delivery_id) == delivery_id)
                .order_by(col(WebhookAttempt.attempted_at_ms), col(WebhookAttempt.id))
            )
        ).all()
    return delivery_view(row, attempts)


async def redeliver(rt: Runtime, account_id: str, delivery_id: str) -> dict[str, Any]:
    """Send the same message (same `webhook-id` and body) again, with a fresh retry schedule."""
    row = await _delivery_row(rt, account_id, delivery_id)
    if row.endpoint_id is not None:
        endpoint = await load_endpoint(rt, account_id, row.endpoint_id)
        if not endpoint.enabled:
            raise Conflict("The endpoint is disabled; enable it before redelivering")
    next_round = row.round + 1
    async with rt.store.transaction() as conn:
        moved = await conn.execute(
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.round) == row.round)
            .values(
                status=DELIVERY_PENDING,
                round=next_round,
                attempts=0,
                next_attempt_at_ms=now_ms(),
                delivered_at_ms=None,
                last_error=None,
            )
        )
    if moved.rowcount != 1:
        raise Conflict("The delivery was redelivered concurrently")
    await rt.bus.enqueue_delivery(delivery_id, next_round)
    return await get_delivery(rt, account_id, delivery_id)


async def send_test_event(rt: Runtime, account_id: str, endpoint_id: str) -> dict[str, Any]:
    """Queue a `webhook.test` message to the endpoint, whatever its event filter."""
    endpoint = await load_endpoint(rt, account_id, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it before testing")
    stamp = now_ms()
    data = compact_json({"endpoint_id": endpoint_id, "message": "test event"})
    row = delivery_row(
        account_id=account_id,
        endpoint_id=endpoint_id,
        url=endpoint.url,
        event_seq=None,
        event_type=TEST_EVENT_TYPE,
        payload=webhook_payload(TEST_EVENT_TYPE, stamp, data),
        created_at_ms=stamp,
    )
    # SQLModel declares no __table__ (it is set by the SQLAlchemy mapping at class creation).
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    async with rt.store.transaction() as conn:
        await conn.execute(table.insert().values(**row))
    await rt.bus.enqueue_drain()
    return await get_delivery(rt, account_id, row["id"])
