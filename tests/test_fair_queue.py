"""The fair order of the provider queue: accounts in turns of their tier's queue_weight, apps
round-robin within an account, and the bound on how long one account's submit waits."""

from __future__ import annotations

import itertools
import json

import pytest

from lunos_events.services.fair_queue import FairQueue, Queued, in_turns
from lunos_events.settings import DEFAULT_TIERS, Settings, TierLimits
from lunos_events.store.models import Operation

WEIGHTS = {"pro": 3, "free": 1, "mid": 2}
_at = itertools.count()


def queued(account: str, app: str | None = None, tier: str = "free", model: str = "m") -> Queued:
    at = next(_at)
    op = Operation.model_construct(
        id=f"{account}{app}{at}", account_id=account, app_id=app, created_at_ms=at, provider_model=model
    )
    return Queued(op, tier)


def weighted() -> FairQueue:
    return FairQueue(lambda tier: WEIGHTS.get(tier, 1))


def dispatch(queue: FairQueue, waiting: list[Queued], starts: int) -> list[str]:
    """One start per round (a pool with one free slot each time): the accounts served, in order."""
    by_id = {q.op.id: q for q in waiting}
    served = []
    for _ in range(starts):
        if not by_id:
            break
        op = queue.order(list(by_id.values()))[0]
        queue.served(op)
        del by_id[op.id]
        served.append(op.account_id)
    return served


def test_fair_order_alternates_accounts_and_apps() -> None:
    ops = [queued("a", "x"), queued("a", "x"), queued("a", "y"), queued("a", "x"), queued("b")]
    names = {q.op.id: f"{q.op.account_id}{q.op.app_id or ''}{n}" for n, q in enumerate(ops)}
    queue = FairQueue()
    assert [names[o.id] for o in queue.order(ops)] == ["ax0", "b4", "ay2", "ax1", "ax3"]
    queue.served(ops[0].op)  # after serving a, b goes first
    assert [names[o.id] for o in queue.order(ops[1:])][:2] == ["b4", "ay2"]


def test_in_turns_takes_each_groups_weight() -> None:
    assert in_turns([["a1", "a2", "a3"], ["b1", "b2"]], [2, 1]) == ["a1", "a2", "b1", "a3", "b2"]
    assert in_turns([["a1", "a2", "a3"], ["b1"]], [2, 1], first=1) == ["a1", "b1", "a2", "a3"]


def test_weights_3_and_1_alternate_3_to_1_with_deep_queues() -> None:
    waiting = [queued("pro-acct", tier="pro") for _ in range(40)] + [queued("free-acct") for _ in range(40)]
    # One start per round: the turn under way carries across rounds.
    served = dispatch(weighted(), waiting, 24)
    assert "".join("P" if a == "pro-acct" else "f" for a in served) == "PPPf" * 6
    # Many starts in one round: the same order at once.
    order = weighted().order(waiting)[:24]
    assert "".join("P" if o.account_id == "pro-acct" else "f" for o in order) == "PPPf" * 6


def test_apps_within_a_weighted_account_still_alternate() -> None:
    waiting = [queued("p", "x", "pro") for _ in range(6)] + [queued("p", "y", "pro") for _ in range(6)]
    waiting += [queued("f") for _ in range(6)]
    order = weighted().order(waiting)[:8]
    assert [(o.account_id, o.app_id) for o in order] == [
        ("p", "x"), ("p", "y"), ("p", "x"), ("f", None), ("p", "y"), ("p", "x"), ("p", "y"), ("f", None),
    ]  # fmt: skip


def test_a_new_account_waits_at_most_the_rest_of_the_turn_under_way() -> None:
    queue = weighted()
    deep = [queued("pro-acct", tier="pro") for _ in range(20)]
    assert dispatch(queue, deep, 1) == ["pro-acct"]  # its turn is under way: 2 more to go
    single = queued("newcomer")
    assert dispatch(queue, [*deep[1:], single], 4) == ["pro-acct", "pro-acct", "newcomer", "pro-acct"]


@pytest.mark.parametrize("offset", range(12))
def test_a_single_submit_waits_at_most_the_other_accounts_weights(offset: int) -> None:
    """Three deep accounts (weights 3, 2, 1), and one that was served before and submits again at
    any point of the turns: at most 3 + 2 + 1 starts go to the others before it."""
    queue = weighted()
    waiting = [queued(a, tier=t) for a, t in (("p", "pro"), ("m", "mid"), ("f", "free")) for _ in range(60)]
    served = dispatch(queue, [*waiting, queued("b")], 7 + offset)
    assert "b" in served  # b was served once, a while ago
    after = dispatch(queue, [*_remaining(waiting, served), queued("b")], 20)
    assert after.index("b") <= 3 + 2 + 1, after


def _remaining(waiting: list[Queued], served: list[str]) -> list[Queued]:
    """What is left of each account's queue after `served` took from their heads."""
    taken = {a: served.count(a) for a in set(served)}
    left = []
    for account in dict.fromkeys(q.op.account_id for q in waiting):
        mine = [q for q in waiting if q.op.account_id == account]
        left += mine[taken.get(account, 0) :]
    return left


def test_queue_weight_defaults_and_reads_from_an_older_lunos_tiers(monkeypatch) -> None:
    assert {name: t.queue_weight for name, t in DEFAULT_TIERS.items()} == {
        "free": 1,
        "standard": 2,
        "pro": 3,
        "dev": 1,
    }
    monkeypatch.setenv("LUNOS_TIERS", json.dumps({"gold": {"submits_per_minute": 5, "max_in_flight": 1}}))
    assert Settings().tier_limits("gold").queue_weight == 1  # written before the field: plain turns
    gold = {"submits_per_minute": 5, "max_in_flight": 1, "queue_weight": 4}
    monkeypatch.setenv("LUNOS_TIERS", json.dumps({"gold": gold}))
    assert Settings().tier_limits("gold").queue_weight == 4
    with pytest.raises(ValueError, match="queue_weight"):
        TierLimits(submits_per_minute=1, max_in_flight=1, queue_weight=0)
