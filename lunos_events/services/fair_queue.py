"""The queue of operations waiting for provider capacity, read from the database in a fair order.

The database is the queue (pending, `queued_at_ms` set, no credential yet); Redis only wakes the
dispatchers. Accounts are served round-robin, and the apps within an account too: the account
served longest ago goes first, so one account's thousand submits delay another's one by at most
one turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlmodel import col

from lunos_events.store.models import PENDING, Operation
from lunos_events.store.transactions import Store

T = TypeVar("T")
_COLUMNS = Operation.__table__.columns  # type: ignore[attr-defined]  # SQLModel declares no __table__
QUEUED = (
    col(Operation.status) == PENDING,
    col(Operation.queued_at_ms).is_not(None),
    col(Operation.provider_credential).is_(None),
    col(Operation.provider_operation).is_(None),
)


def interleave(groups: Sequence[Sequence[T]]) -> list[T]:
    """One of each group in turn: [[a1, a2], [b1]] -> [a1, b1, a2]."""
    return [item for turn in zip_longest(*groups) for item in turn if item is not None]


class FairQueue:
    """Remembers whom it served (per dispatcher process: a shared order is not needed for fairness,
    each dispatcher alternates on its own)."""

    def __init__(self) -> None:
        self._served: dict[str, int] = {}
        self._tick = 0

    def order(self, ops: Sequence[Operation]) -> list[Operation]:
        accounts: dict[str, dict[str, list[Operation]]] = {}
        for op in sorted(ops, key=lambda o: (o.created_at_ms, o.id)):
            accounts.setdefault(op.account_id, {}).setdefault(op.app_id or "", []).append(op)
        queues: dict[str, list[Operation]] = {}
        for account, apps in accounts.items():
            app_order = sorted(apps, key=lambda app: (self._last(account, app), apps[app][0].created_at_ms))
            queues[account] = interleave([apps[app] for app in app_order])
        account_order = sorted(queues, key=lambda a: (self._last(a), queues[a][0].created_at_ms))
        return interleave([queues[account] for account in account_order])

    def served(self, op: Operation) -> None:
        self._tick += 1
        self._served[op.account_id] = self._served[f"{op.account_id}\0{op.app_id or ''}"] = self._tick

    def _last(self, account: str, app: str | None = None) -> int:
        return self._served.get(account if app is None else f"{account}\0{app}", -1)


async def queued_operations(store: Store, per_app: int) -> list[Operation]:
    """The first `per_app` queued operations of every account's every app."""
    turn = (
        func.row_number()
        .over(
            partition_by=(col(Operation.account_id), col(Operation.app_id)),
            order_by=(col(Operation.created_at_ms), col(Operation.id)),
        )
        .label("turn")
    )
    ranked = select(col(Operation.id), turn).where(*QUEUED).subquery()
    query = (
        select(*_COLUMNS)
        .join(ranked, ranked.c.id == col(Operation.id))
        .where(ranked.c.turn <= per_app, *QUEUED)
    )
    rows: Sequence[Any] = await store.all(query)
    return [Operation.model_construct(**row._asdict()) for row in rows]


async def queue_depths(store: Store) -> dict[str, int]:
    """Queued operations per upstream model."""
    query = (
        select(col(Operation.provider_model), func.count())
        .where(*QUEUED)
        .group_by(col(Operation.provider_model))
    )
    return {str(model): int(count) for model, count in await store.all(query)}
