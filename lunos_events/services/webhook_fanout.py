"""Which deliveries an event owes, written inside the transaction that stores the event.

Webhooks are one consumer of the event store: `record_deliveries` is what storing an event calls.
Because the deliveries commit together with the event (and the event with the state change), a
status change can never be stored without its webhooks, whatever process dies afterwards.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, bindparam, insert, select, update
from sqlmodel import col

from lunos_events.errors import InvalidRequest
from lunos_events.json_text import compact_json
from lunos_events.services.status import PROGRESS_EVENT, event_type
from lunos_events.services.timing import iso
from lunos_events.store.models import ACTIVE_STATUSES, DELETED, TERMINAL_STATUSES, Account
from lunos_events.store.transactions import Store, Tx
from lunos_events.store.webhook_models import (
    DELIVERY_PENDING,
    OperationWebhook,
    WebhookDelivery,
    WebhookEndpoint,
)
from lunos_events.url_guard import check_url_syntax

DELIVERY_ID_PREFIX = "msg_"
# video.progress only when asked for: it is sent at most every few seconds per running operation;
# video.deleted too (a video removed by its owner or by retention, after its operation ended).
EVENT_TYPES = frozenset(
    {*(event_type(s) for s in {*ACTIVE_STATUSES, *TERMINAL_STATUSES, DELETED}), PROGRESS_EVENT}
)
DEFAULT_EVENT_TYPES = tuple(sorted(event_type(s) for s in TERMINAL_STATUSES))


def parse_event_filter(value: Any, field: str) -> list[str]:
    """A non-empty list of known event types; None means the terminal events."""
    if value is None:
        return list(DEFAULT_EVENT_TYPES)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"Field '{field}' must be a non-empty list of event types")
    unknown = sorted(set(value) - EVENT_TYPES)
    if unknown:
        raise InvalidRequest(
            f"Unknown event type {unknown[0]!r} in '{field}': use {', '.join(sorted(EVENT_TYPES))}"
        )
    return sorted(set(value))


@dataclass(frozen=True)
class RequestWebhook:
    """`webhook` (+ `webhook_events_filter`) from a submit body."""

    url: str
    events: list[str]


def parse_request_webhook(body: dict[str, Any]) -> RequestWebhook | None:
    url = body.get("webhook")
    if url is None:
        if body.get("webhook_events_filter") is not None:
            raise InvalidRequest("Field 'webhook_events_filter' needs a 'webhook' url")
        return None
    return RequestWebhook(
        url=check_url_syntax(url),
        events=parse_event_filter(body.get("webhook_events_filter"), "webhook_events_filter"),
    )


_INSERT_REQUEST_WEBHOOK = insert(OperationWebhook.__table__)  # type: ignore[attr-defined]  # SQLModel declares no __table__
_ENABLED_ENDPOINTS = select(
    col(WebhookEndpoint.id),
    col(WebhookEndpoint.url),
    col(WebhookEndpoint.events),
    col(WebhookEndpoint.app_id),
).where(col(WebhookEndpoint.account_id) == bindparam("account_id"), col(WebhookEndpoint.enabled).is_(True))
_REQUEST_WEBHOOK = select(col(OperationWebhook.url), col(OperationWebhook.events)).where(
    col(OperationWebhook.operation_id) == bindparam("operation_id")
)
_INSERT_DELIVERY = insert(WebhookDelivery.__table__)  # type: ignore[attr-defined]  # SQLModel declares no __table__


async def store_request_webhook(tx: Tx, account_id: str, operation_id: str, hook: RequestWebhook) -> None:
    await tx.execute(
        _INSERT_REQUEST_WEBHOOK,
        {"operation_id": operation_id, "account_id": account_id, "url": hook.url, "events": hook.events},
    )


def new_delivery_id() -> str:
    return DELIVERY_ID_PREFIX + secrets.token_urlsafe(18)


def webhook_payload(type_: str, created_at_ms: int, data_json: str) -> str:
    """`{"type", "timestamp", "data"}`; `data` is spliced in verbatim (the stored status object)."""
    head = compact_json({"type": type_, "timestamp": iso(created_at_ms)})
    return f'{head[:-1]},"data":{data_json}}}'


def delivery_row(
    *,
    account_id: str,
    endpoint_id: str | None,
    url: str,
    event_seq: int | None,
    event_type: str,
    payload: str,
    created_at_ms: int,
) -> dict[str, Any]:
    return WebhookDelivery(
        id=new_delivery_id(),
        account_id=account_id,
        endpoint_id=endpoint_id,
        url=url,
        event_seq=event_seq,
        event_type=event_type,
        payload=payload,
        next_attempt_at_ms=created_at_ms,
        created_at_ms=created_at_ms,
    ).model_dump()


def bump_webhooks_version(account_id: str) -> Update:
    """Run it in the transaction of every change to the account's endpoints: it tells each writer
    that the endpoints it keeps for the account (`enabled_endpoints`) are stale."""
    return (
        update(Account)
        .where(col(Account.id) == account_id)
        .values(webhooks_version=col(Account.webhooks_version) + 1)
    )


# Accounts whose endpoints a writer keeps at most; past that it starts over.
MAX_CACHED_ACCOUNTS = 10_000
# Endpoints read for an account are reused for at most this long, even at an unchanged version: a
# bound on how stale they can be should a change ever come without its bump (from a process still on
# an older release, during a rolling upgrade).
ENDPOINTS_REUSE_SECONDS = 60.0


async def enabled_endpoints(tx: Tx, account_id: str, webhooks_version: int) -> list[tuple[Any, ...]]:
    """The account's enabled endpoints (id, url, events, app_id), read again only when
    `webhooks_version` (read in this transaction) differs from the one they were read at, or they
    were read `ENDPOINTS_REUSE_SECONDS` ago.

    Every change to an account's endpoints bumps its version in the same transaction, and the
    statement that read the version locked the account's row (or, on SQLite, the database), so the
    endpoints cannot change before this transaction ends.
    """
    key = ("webhook_endpoints", account_id)
    now = time.monotonic()
    cached = tx.memo.get(key)
    if cached is not None and cached[0] == webhooks_version and now - cached[1] < ENDPOINTS_REUSE_SECONDS:
        rows: list[tuple[Any, ...]] = cached[2]
        return rows
    rows = [tuple(row) for row in await tx.execute(_ENABLED_ENDPOINTS, {"account_id": account_id})]
    if len(tx.memo) >= MAX_CACHED_ACCOUNTS:
        tx.memo.clear()
    tx.memo[key] = (webhooks_version, now, rows)
    return rows


async def record_deliveries(
    tx: Tx,
    *,
    account_id: str,
    seq: int,
    operation_id: str,
    app_id: str | None,
    type: str,
    data: str,
    created_at_ms: int,
    webhooks_version: int,
    request_webhook: bool,
) -> int:
    """Insert one pending delivery per endpoint (and per-request webhook) subscribed to the event
    being stored (its fields, as in StoredEvent); returns how many.

    `webhooks_version`: the account's, read in this transaction. `request_webhook=False` says the
    operation has no per-request webhook (its creator knows), which saves the lookup.
    """
    targets: list[tuple[str | None, str]] = [
        (endpoint_id, url)
        for endpoint_id, url, events, endpoint_app in await enabled_endpoints(
            tx, account_id, webhooks_version
        )
        if type in events and (endpoint_app is None or endpoint_app == app_id)
    ]
    hook = await tx.first(_REQUEST_WEBHOOK, operation_id=operation_id) if request_webhook else None
    if hook is not None and type in hook[1]:
        targets.append((None, hook[0]))
    if not targets:
        return 0
    payload = webhook_payload(type, created_at_ms, data)
    await tx.execute(
        _INSERT_DELIVERY,
        [
            delivery_row(
                account_id=account_id,
                endpoint_id=endpoint_id,
                url=url,
                event_seq=seq,
                event_type=type,
                payload=payload,
                created_at_ms=created_at_ms,
            )
            for endpoint_id, url in targets
        ],
    )
    return len(targets)


# A delivery no attempt has been made of, never redelivered: owned by the drain jobs
# (webhooks/drain.py), which an event's release wakes.
FRESH_DELIVERY = (
    col(WebhookDelivery.status) == DELIVERY_PENDING,
    col(WebhookDelivery.attempts) == 0,
    col(WebhookDelivery.round) == 0,
)


async def owes_fresh_deliveries(store: Store, account_id: str, seq: int) -> bool:
    """Whether an event still has fresh deliveries (for events read back, whose count is unknown)."""
    owed = await store.first(
        select(col(WebhookDelivery.id))
        .where(col(WebhookDelivery.account_id) == account_id, col(WebhookDelivery.event_seq) == seq)
        .where(*FRESH_DELIVERY)
        .limit(1)
    )
    return owed is not None
