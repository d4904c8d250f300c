"""The queue of operations waiting for provider capacity, read from the database in a fair order.

The database is the queue (pending, `queued_at_ms` set, no credential yet); Redis only wakes the
dispatchers. Accounts are served in turns, round-robin: the account served longest ago goes first,
and in its turn it may start up to its tier's `queue_weight` operations (w) before the next account
goes; within an account its apps take one start each in turn.

The guarantee, per dispatcher: once an account B's operation is the first of B's queue, the starts
of its upstream model that go to other accounts before it number at most the sum of the other
accounts' weights, Σ w_a (a ≠ B, over accounts with queued work). Each of them finishes at most one
turn ahead of B: the turn under way, or one turn for an account served before B was; after its
turn an account was served more recently than B, so it sorts behind B. With every weight 1 and two
accounts, that is one start: one account's thousand submits delay another's one by one turn. An
account that was never served goes first after the turn under way, so its first operation waits at
most w - 1 starts (w: the weight of the account whose turn it is) plus the turns of other
never-served accounts that queued before it. Each dispatcher keeps its own turns (a shared order is
not needed for fairness), so with D dispatchers the bound is D times this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlmodel import col

from lunos_events.store.models import PENDING, Account, Operation
from lunos_events.store.transactions import Store

T = TypeVar("T")
QUEUED = (
    col(Operation.status) == PENDING,
    col(Operation.queued_at_ms).is_not(None),
    col(Operation.provider_credential).is_(None),
    col(Operation.provider_operation).is_(None),
)


@dataclass(frozen=True, slots=True)
class Queued:
    """A queued operation and its account's tier (whose queue_weight sizes the account's turns)."""

    op: Operation
    tier: str


def interleave(groups: Sequence[Sequence[T]]) -> list[T]:
    """One of each group in turn: [[a1, a2], [b1]] -> [a1, b1, a2]."""
    return [item for turn in zip_longest(*groups) for item in turn if item is not None]


def in_turns(groups: Sequence[Sequence[T]], weights: Sequence[int], first: int | None = None) -> list[T]:
    """Up to `weights[i]` of group i in turn, the first group's first turn taking `first` if set:
    [[a1, a2, a3], [b1, b2]] with weights [2, 1] -> [a1, a2, b1, a3, b2]."""
    order: list[T] = []
    taken = [0] * len(groups)
    allowance = [first if i == 0 and first is not None else w for i, w in enumerate(weights)]
    while any(taken[i] < len(group) for i, group in enumerate(groups)):
        for i, group in enumerate(groups):
            order += group[taken[i] : taken[i] + allowance[i]]
            taken[i] += allowance[i]
        allowance = list(weights)
    return order


class FairQueue:
    """Remembers whom it served and the turn under way (per dispatcher process)."""

    def __init__(self, weight: Callable[[str], int] = lambda tier: 1) -> None:
        self._weight = weight  # a tier's queue_weight
        self._served: dict[str, int] = {}
        self._tick = 0
        self._turn: tuple[str, int] | None = None  # the account served last, and its starts in a row

    def order(self, queued: Sequence[Queued]) -> list[Operation]:
        accounts: dict[str, dict[str, list[Operation]]] = {}
        weights: dict[str, int] = {}
        for item in sorted(queued, key=lambda q: (q.op.created_at_ms, q.op.id)):
            op = item.op
            weights[op.account_id] = max(1, self._weight(item.tier))
            accounts.setdefault(op.account_id, {}).setdefault(op.app_id or "", []).append(op)
        queues: dict[str, list[Operation]] = {}
        for account, apps in accounts.items():
            app_order = sorted(apps, key=lambda app: (self._last(account, app), apps[app][0].created_at_ms))
            queues[account] = interleave([apps[app] for app in app_order])
        account_order = sorted(queues, key=lambda a: (self._last(a), queues[a][0].created_at_ms))
        first = None
        if self._turn is not None:
            # The account whose turn is under way (served last, so sorted last) finishes it first.
            current, used = self._turn
            if current in queues and used < weights[current]:
                account_order.remove(current)
                account_order.insert(0, current)
                first = weights[current] - used
        return in_turns([queues[a] for a in account_order], [weights[a] for a in account_order], first)

    def served(self, op: Operation) -> None:
        self._tick += 1
        account = op.account_id
        in_a_row = self._turn[1] if self._turn is not None and self._turn[0] == account else 0
        self._turn = (account, in_a_row + 1)
        self._served[account] = self._served[f"{account}\0{op.app_id or ''}"] = self._tick

    def _last(self, account: str, app: str | None = None) -> int:
        return self._served.get(account if app is None else f"{account}\0{app}", -1)


# What the fair order needs of a queued operation (the dispatcher reads its whole row only to start it).
_ORDERED_BY = ("id", "account_id", "app_id", "created_at_ms", "provider_model", "deadline_at_ms")
_COLUMNS = Operation.__table__.columns  # type: ignore[attr-defined]  # SQLModel declares no __table__


async def queued_operations(store: Store, per_app: int | None, model: str | None = None) -> list[Queued]:
    """The first `per_app` (None: all) queued operations of every account's every app (of one
    upstream `model`, if given), with the account's tier; only the fields the fair order reads are
    set on each operation."""
    turn = (
        func.row_number()
        .over(
            partition_by=(col(Operation.account_id), col(Operation.app_id)),
            order_by=(col(Operation.created_at_ms), col(Operation.id)),
        )
        .label("turn")
    )
    waiting = select(*(_COLUMNS[name] for name in _ORDERED_BY), turn).where(*QUEUED)
    if model is not None:
        waiting = waiting.where(col(Operation.provider_model) == model)
    ranked = waiting.subquery()
    query = select(*(ranked.c[name] for name in _ORDERED_BY), col(Account.tier)).join(
        Account, col(Account.id) == ranked.c.account_id
    )
    if per_app is not None:
        query = query.where(ranked.c.turn <= per_app)
    rows: Sequence[Any] = await store.all(query)
    queued = []
    for row in rows:
        fields = row._asdict()
        tier = fields.pop("tier")
        queued.append(Queued(Operation.model_construct(**fields), tier))
    return queued


async def queue_depths(store: Store) -> dict[str, int]:
    """Queued operations per upstream model."""
    query = (
        select(col(Operation.provider_model), func.count())
        .where(*QUEUED)
        .group_by(col(Operation.provider_model))
    )
    return {str(model): int(count) for model, count in await store.all(query)}
