"""Reading an account's operations back: a cursor-paginated list, and usage per app."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import col

from lunos_events.errors import InvalidRequest
from lunos_events.ids import now_ms
from lunos_events.money import CURRENCY, format_amount
from lunos_events.numerals import ascii_int
from lunos_events.services.status import status_object
from lunos_events.services.timing import EPOCH, iso, timestamps
from lunos_events.store.models import ACTIVE_STATUSES, COMPLETED, DELETED, TERMINAL_STATUSES, Operation
from lunos_events.store.transactions import Store

STATUSES = (*ACTIVE_STATUSES, *sorted(TERMINAL_STATUSES), DELETED)
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
        except (ValueError, binascii.Error):
            return _bad_cursor()
        stamp, _, op_id = raw.partition(":")
        created_at_ms = ascii_int(stamp)
        # Compared with columns in SQL: a number past 64 bits or a NUL would fail there, not here.
        if created_at_ms is None or not op_id or not op_id.isprintable():
            return _bad_cursor()
        return cls(created_at_ms, op_id)


def _bad_cursor() -> Cursor:
    raise InvalidRequest("'after' must be the next_after value of a previous page")


def parse_status(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in STATUSES:
        raise InvalidRequest(f"'status' must be one of: {', '.join(STATUSES)}")
    return value


def parse_limit(value: str | None, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    """A page size from a query string: `default` when absent, else an integer from 1 to `maximum`."""
    if value is None or value == "":
        return default
    limit = ascii_int(value, max_value=maximum)
    if limit is None or limit < 1:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {maximum}")
    return limit


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
    try:
        # An offset can push a date at either end of the calendar out of years 1-9999.
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(f"'{name}' must be between years 1 and 9999 in UTC") from None
    # In whole milliseconds, without a float: one rounded up at the calendar's end is past it.
    return (moment - EPOCH) // timedelta(milliseconds=1)


def listed(op: Any, *, with_account: bool = False) -> dict[str, Any]:
    """A list entry: the status object, plus what tells the operations apart in a list."""
    # Without progress and queue position: they cost a read per operation (poll one for them).
    times = timestamps(op.status, op.created_at_ms, op.started_at_ms, op.completed_at_ms)
    entry = {
        **status_object(op.id, op.status, op.video_url, op.error, op.error_code, op.outcome, times),
        "model": op.model,
        "app_id": op.app_id,
        "prompt": op.prompt,
        "cost": format_amount(0 if op.refunded else op.cost_cents),
    }
    if with_account:
        entry["account_id"] = op.account_id
    return entry


async def operation_page(
    store: Store,
    account_id: str | None,
    *,
    status: str | None,
    app_id: str | None,
    limit: int,
    after: Cursor | None,
    ascending: bool = False,
    hide_deleted: bool = False,
) -> tuple[list[Operation], Cursor | None]:
    """One page of operations (every account's when `account_id` is None), newest first unless
    `ascending`, and the cursor of the next page (None on the last)."""
    query = select(Operation)
    if hide_deleted:
        query = query.where(col(Operation.status) != DELETED)
    if account_id is not None:
        query = query.where(col(Operation.account_id) == account_id)
    if status is not None:
        query = query.where(col(Operation.status) == status)
    if app_id is not None:
        query = query.where(col(Operation.app_id) == app_id)
    created, op_id = col(Operation.created_at_ms), col(Operation.id)
    if after is not None:
        if ascending:
            past = or_(
                created > after.created_at_ms,
                and_(created == after.created_at_ms, op_id > after.operation_id),
            )
        else:
            past = or_(
                created < after.created_at_ms,
                and_(created == after.created_at_ms, op_id < after.operation_id),
            )
        query = query.where(past)
    order = (created.asc(), op_id.asc()) if ascending else (created.desc(), op_id.desc())
    rows = await store.all(query.order_by(*order).limit(limit + 1))
    page = [Operation.model_construct(**row._asdict()) for row in rows[:limit]]
    more = len(rows) > limit
    return page, (Cursor(page[-1].created_at_ms, page[-1].id) if more else None)


# A completed operation's links as they should be shown: its video URL and its outcome (other
# samples, poster), re-signed where a presigned one is about to expire.
Relink = Callable[[Operation], Awaitable[tuple[str, dict[str, Any] | None]]]


async def list_operations(
    store: Store,
    account_id: str | None,
    *,
    status: str | None,
    app_id: str | None,
    limit: int,
    after: Cursor | None,
    relink: Relink,
) -> dict[str, Any]:
    page, cursor = await operation_page(
        store, account_id, status=status, app_id=app_id, limit=limit, after=after
    )
    data = []
    for row in page:
        entry = listed(row, with_account=account_id is None)
        if row.status == COMPLETED and row.video_url:
            entry["video_url"], outcome = await relink(row)
            entry.update(outcome or {})
        data.append(entry)
    return {"data": data, "next_after": cursor.encode() if cursor is not None else None}


DAY_MS = 86_400_000
GROUPINGS = ("app", "day")
# A chart by day without `since` covers this many days back.
DEFAULT_DAYS = 30


def parse_group_by(value: str | None) -> str:
    if value is None or value == "":
        return "app"
    if value not in GROUPINGS:
        raise InvalidRequest(f"'group_by' must be one of: {', '.join(GROUPINGS)}")
    return value


def _spent() -> Any:
    return func.sum(case((col(Operation.refunded).is_(False), col(Operation.cost_cents)), else_=0))


def _within(
    query: Any, account_id: str | None, app_id: str | None, since_ms: int | None, until_ms: int | None
) -> Any:
    if account_id is not None:
        query = query.where(col(Operation.account_id) == account_id)
    if app_id is not None:
        query = query.where(col(Operation.app_id) == app_id)
    if since_ms is not None:
        query = query.where(col(Operation.created_at_ms) >= since_ms)
    if until_ms is not None:
        query = query.where(col(Operation.created_at_ms) < until_ms)
    return query


async def usage(
    store: Store,
    account_id: str | None,
    *,
    app_id: str | None,
    since_ms: int | None,
    until_ms: int | None,
    group_by: str = "app",
) -> dict[str, Any]:
    """Per app: operations by status and spend (what was charged and not refunded); with
    `group_by="day"`, also per UTC day and app. Every account's when `account_id` is None."""
    if group_by == "day" and since_ms is None:
        since_ms = ((until_ms or now_ms()) // DAY_MS - DEFAULT_DAYS + 1) * DAY_MS
    query = select(
        col(Operation.app_id), col(Operation.status), func.count().label("n"), _spent().label("spent")
    ).group_by(col(Operation.app_id), col(Operation.status))
    rows = await store.all(_within(query, account_id, app_id, since_ms, until_ms))

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
        **(
            {"days": await _daily(store, account_id, app_id, since_ms, until_ms)} if group_by == "day" else {}
        ),
    }


async def _daily(
    store: Store, account_id: str | None, app_id: str | None, since_ms: int | None, until_ms: int | None
) -> list[dict[str, Any]]:
    """Operations and spend per UTC day and app, oldest day first (days without any are left out)."""
    # Integer division on both databases: the day number since the epoch.
    day = (col(Operation.created_at_ms) // DAY_MS).label("day")
    query = select(day, col(Operation.app_id), func.count().label("n"), _spent().label("spent")).group_by(
        day, col(Operation.app_id)
    )
    rows = await store.all(_within(query, account_id, app_id, since_ms, until_ms))
    return [
        {
            "date": datetime.fromtimestamp(int(row.day) * DAY_MS / 1000, UTC).date().isoformat(),
            "app_id": row.app_id,
            "operations": row.n,
            "spend": format_amount(int(row.spent or 0)),
        }
        for row in sorted(rows, key=lambda r: (int(r.day), r.app_id is not None, r.app_id or ""))
    ]


def _empty_tally() -> dict[str, Any]:
    return {"operations": 0, "by_status": dict.fromkeys(STATUSES, 0), "spent_cents": 0}


def _shown(tally: dict[str, Any]) -> dict[str, Any]:
    return {
        "operations": tally["operations"],
        "by_status": tally["by_status"],
        "spend": format_amount(tally["spent_cents"]),
    }
