"""Reading an account's operations back: a cursor-paginated list, and usage per app."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import col

from lunos_events.errors import InvalidRequest
from lunos_events.money import CURRENCY, format_amount
from lunos_events.services.status import status_object
from lunos_events.store.models import DELETED, PENDING, TERMINAL_STATUSES, Operation
from lunos_events.store.transactions import Store

STATUSES = (PENDING, *sorted(TERMINAL_STATUSES), DELETED)
DEFAULT_PAGE = 20
MAX_PAGE = 100


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last operation's creation time and id (newest first, id breaks ties)."""

    created_at_ms: int
    operation_id: str

    def encode(self) -> str:
        raw = f"{self.created_at_ms}:{self.operation_id}".encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            stamp, _, op_id = raw.partition(":")
            return cls(int(stamp), op_id) if op_id else _bad_cursor()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return _bad_cursor()


def _bad_cursor() -> Cursor:
    raise InvalidRequest("'after' must be the next_after value of a previous page")


def parse_status(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in STATUSES:
        raise InvalidRequest(f"'status' must be one of: {', '.join(STATUSES)}")
    return value


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_PAGE}")
    return int(value)


def parse_time(value: str | None, name: str) -> int | None:
    """An ISO 8601 date or date-time (UTC unless it says otherwise), as unix ms."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def listed(op: Any) -> dict[str, Any]:
    """A list entry: the status object, plus what tells the operations apart in a list."""
    return {
        **status_object(op.id, op.status, op.video_url, op.error),
        "model": op.model,
        "app_id": op.app_id,
        "created_at": iso(op.created_at_ms),
    }


async def list_operations(
    store: Store,
    account_id: str,
    *,
    status: str | None,
    app_id: str | None,
    limit: int,
    after: Cursor | None,
) -> dict[str, Any]:
    query = select(
        col(Operation.id),
        col(Operation.status),
        col(Operation.video_url),
        col(Operation.error),
        col(Operation.model),
        col(Operation.app_id),
        col(Operation.created_at_ms),
    ).where(col(Operation.account_id) == account_id)
    if status is not None:
        query = query.where(col(Operation.status) == status)
    if app_id is not None:
        query = query.where(col(Operation.app_id) == app_id)
    if after is not None:
        query = query.where(
            or_(
                col(Operation.created_at_ms) < after.created_at_ms,
                and_(
                    col(Operation.created_at_ms) == after.created_at_ms,
                    col(Operation.id) < after.operation_id,
                ),
            )
        )
    query = query.order_by(col(Operation.created_at_ms).desc(), col(Operation.id).desc()).limit(limit + 1)
    rows = await store.all(query)
    page, more = rows[:limit], len(rows) > limit
    next_after = Cursor(page[-1].created_at_ms, page[-1].id).encode() if more else None
    return {"data": [listed(row) for row in page], "next_after": next_after}


async def usage(
    store: Store, account_id: str, *, app_id: str | None, since_ms: int | None, until_ms: int | None
) -> dict[str, Any]:
    """Per app: operations by status and spend (what was charged and not refunded)."""
    spent = func.sum(case((col(Operation.refunded).is_(False), col(Operation.cost_cents)), else_=0))
    query = (
        select(col(Operation.app_id), col(Operation.status), func.count().label("n"), spent.label("spent"))
        .where(col(Operation.account_id) == account_id)
        .group_by(col(Operation.app_id), col(Operation.status))
    )
    if app_id is not None:
        query = query.where(col(Operation.app_id) == app_id)
    if since_ms is not None:
        query = query.where(col(Operation.created_at_ms) >= since_ms)
    if until_ms is not None:
        query = query.where(col(Operation.created_at_ms) < until_ms)
    rows = await store.all(query)

    apps: dict[str | None, dict[str, Any]] = {}
    total = _empty_tally()
    for row in rows:
        tally = apps.setdefault(row.app_id, _empty_tally())
        for bucket in (tally, total):
            bucket["by_status"][row.status] += row.n
            bucket["operations"] += row.n
            bucket["spent_cents"] += int(row.spent or 0)
    return {
        "currency": CURRENCY,
        "since": iso(since_ms) if since_ms is not None else None,
        "until": iso(until_ms) if until_ms is not None else None,
        "apps": [
            {"app_id": app, **_shown(tally)}
            for app, tally in sorted(apps.items(), key=lambda item: (item[0] is not None, item[0] or ""))
        ],
        "total": _shown(total),
    }


def _empty_tally() -> dict[str, Any]:
    return {"operations": 0, "by_status": dict.fromkeys(STATUSES, 0), "spent_cents": 0}


def _shown(tally: dict[str, Any]) -> dict[str, Any]:
    return {
        "operations": tally["operations"],
        "by_status": tally["by_status"],
        "spend": format_amount(tally["spent_cents"]),
    }
