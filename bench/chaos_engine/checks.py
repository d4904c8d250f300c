"""The chaos run's invariants, checked from the database and from what every client recorded."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import text

from bench.chaos_engine.clients import FINAL, Records
from bench.chaos_engine.receivers import Receiver
from lunos_events.store.transactions import Store

FAULT_GRACE_SECONDS = 5.0  # a 503 counts as the fault's if it comes at most this long after recovery


@dataclass
class Fault:
    kind: str
    at: float
    recovered_at: float | None = None
    back_at: float | None = None  # a fault that lasts a while (a receiver away): when it ended

    @property
    def recovery(self) -> float | None:
        """From the fault (or from its end, for one that lasts) to the service working again."""
        return None if self.recovered_at is None else self.recovered_at - (self.back_at or self.at)


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [*self.lost, *self.doubled, *self.other]


async def check(
    store: Store,
    records: Records,
    receivers: list[Receiver],
    endpoints: dict[str, Receiver],
    faults: list[Fault],
) -> Findings:
    found = Findings()
    ops = {row.id: row for row in await store.all(text("SELECT * FROM operations"))}
    events = await store.all(
        text("SELECT account_id, seq, operation_id, type FROM events ORDER BY account_id, seq")
    )
    deliveries = await store.all(text("SELECT * FROM webhook_deliveries"))
    endpoint_rows = {row.id: row for row in await store.all(text("SELECT * FROM webhook_endpoints"))}
    balances = {
        row.id: row.balance_cents for row in await store.all(text("SELECT id, balance_cents FROM accounts"))
    }
    found.counts.update(operations=len(ops), events=len(events), deliveries=len(deliveries))

    _check_operations(found, records, ops, events)
    _check_balances(found, records, ops, balances)
    _check_streams(found, records, events)
    _check_webhooks(found, receivers, endpoints, endpoint_rows, deliveries, events)
    _check_answers(found, records, faults)
    return found


def _check_operations(found: Findings, records: Records, ops: dict, events: list) -> None:
    mine = {s.account for s in records.submits}
    known: dict[str, str] = {}
    for submit in records.submits:
        if submit.op_id is None:
            found.lost.append(
                f"submit {submit.key} of {submit.account} never got an answer: {Counter(submit.answers)}"
            )
            continue
        if submit.op_id in known:
            found.doubled.append(f"{submit.op_id} answered two different Idempotency-Keys")
        known[submit.op_id] = submit.key
        for replay in submit.replay_ids:
            if replay != submit.op_id:
                found.doubled.append(f"key {submit.key}: {submit.op_id} then {replay} on a repeat")
        op = ops.get(submit.op_id)
        if op is None:
            found.lost.append(f"{submit.op_id} answered 200 but is not in the database")
        elif op.status not in FINAL:
            found.lost.append(f"{submit.op_id} never ended (still {op.status})")
    for op in ops.values():
        if op.account_id in mine and op.id not in known:
            found.doubled.append(f"{op.id} exists but no client was told of it")
    finals = Counter(e.operation_id for e in events if e.type.removeprefix("video.") in FINAL)
    for op_id in known:
        if finals[op_id] > 1:
            found.doubled.append(f"{op_id} ended {finals[op_id]} times")
        elif finals[op_id] == 0 and op_id in ops and ops[op_id].status in FINAL:
            found.lost.append(f"{op_id} ended without a final event")
    for op_id, status in records.final_seen.items():
        if op_id in ops and ops[op_id].status != status:
            found.other.append(f"{op_id}: polled {status}, stored {ops[op_id].status}")
    found.other.extend(f"poll went back: {r}" for r in records.poll_regressions)
    found.counts["refunded"] = sum(1 for op in ops.values() if op.refunded)
    found.counts["slowest_ms"] = max(
        ((op.completed_at_ms or op.updated_at_ms) - op.created_at_ms for op in ops.values()), default=0
    )


def _check_balances(found: Findings, records: Records, ops: dict, balances: dict[str, int]) -> None:
    charged: dict[str, int] = defaultdict(int)
    for op in ops.values():
        charged[op.account_id] += op.cost_cents - (op.cost_cents if op.refunded else 0)
    for account_id, start in records.start_balances.items():
        expected = start - charged[account_id]
        if balances.get(account_id) != expected:
            found.doubled.append(f"balance of {account_id}: {balances.get(account_id)}, expected {expected}")


def _check_streams(found: Findings, records: Records, events: list) -> None:
    by_account: dict[str, list[int]] = defaultdict(list)
    by_op: dict[str, list[int]] = defaultdict(list)
    for event in events:
        by_account[event.account_id].append(event.seq)
        by_op[event.operation_id].append(event.seq)
    reconnects = 0
    for sub in records.subscribers:
        reconnects += sub.connects - 1
        expected = by_account[sub.account.id]
        dupes = len(sub.seqs) - len(set(sub.seqs))
        if dupes:
            found.doubled.append(f"{sub.name}: {dupes} duplicate seq(s)")
        if sub.seqs != sorted(sub.seqs):
            found.other.append(f"{sub.name}: events out of order")
        missing = sorted(set(expected) - set(sub.seqs))
        if missing:
            found.lost.append(f"{sub.name}: missed seq {missing[:10]} of {len(expected)}")
    found.counts["stream_reconnects"] = reconnects
    for op_id, seqs in records.op_streams.items():
        expected = by_op[op_id]
        if len(seqs) != len(set(seqs)):
            found.doubled.append(f"operation stream {op_id}: duplicate seq {seqs}")
        if [s for s in expected if s not in seqs]:
            found.lost.append(f"operation stream {op_id}: got {seqs}, stored {expected}")
    found.other.extend(records.op_stream_problems)


def _check_webhooks(
    found: Findings, receivers: list[Receiver], endpoints: dict, rows: dict, deliveries: list, events: list
) -> None:
    per_event = Counter((d.endpoint_id, d.account_id, d.event_seq) for d in deliveries if d.endpoint_id)
    found.doubled.extend(f"delivery {key} owed {n} times" for key, n in per_event.items() if n > 1)
    received = 0
    for receiver in receivers:
        by_id = receiver.delivered()
        received += len(receiver.receipts)
        for webhook_id, receipts in by_id.items():
            if len({r.body for r in receipts}) > 1:
                found.doubled.append(f"{receiver.kind}: webhook-id {webhook_id} carried different bodies")
        unsigned = [r for r in receiver.receipts if not r.signed]
        if unsigned:
            found.other.append(f"{receiver.kind}: {len(unsigned)} request(s) with a bad signature")
    event_types = {(e.account_id, e.seq): e.type for e in events}
    for endpoint_id, receiver in endpoints.items():
        row = rows[endpoint_id]
        owed = [d for d in deliveries if d.endpoint_id == endpoint_id]
        wanted = set(json.loads(row.events) if isinstance(row.events, str) else row.events)
        account = next(iter({d.account_id for d in owed}), None)
        if receiver.kind == "gone":
            refused = [r.at for r in receiver.receipts if r.status == 410]
            if row.enabled:
                found.other.append(f"endpoint {endpoint_id} answered 410 but is still enabled")
            late = [r for r in receiver.receipts if refused and r.at > refused[0] + 2.0]
            if late:
                found.other.append(
                    f"disabled endpoint {endpoint_id} got {len(late)} request(s) after its 410"
                )
            continue
        by_id = receiver.delivered()
        for delivery in owed:
            if not any(r.status < 300 for r in by_id.get(delivery.id, [])):
                found.lost.append(
                    f"delivery {delivery.id} ({delivery.event_type}) never reached {receiver.kind}"
                )
        if account is not None:
            expected = {k for k, t in event_types.items() if k[0] == account and t in wanted}
            have = {(d.account_id, d.event_seq) for d in owed}
            if expected - have:
                found.lost.append(
                    f"endpoint {endpoint_id}: {len(expected - have)} event(s) without a delivery"
                )
    found.counts["webhook_requests"] = received


def _check_answers(found: Findings, records: Records, faults: list[Fault]) -> None:
    errors = Counter()
    for at, status, what in records.answers:
        if status < 500:
            continue
        errors[status] += 1
        near = any(f.at - 0.5 <= at <= (f.recovered_at or f.at + 60) + FAULT_GRACE_SECONDS for f in faults)
        if status != 503 or not near:
            found.other.append(f"{what} answered {status} {'outside' if status == 503 else 'during'} a fault")
    found.counts["answers"] = len(records.answers)
    found.counts["answers_503"] = errors[503]
    found.counts["no_answer"] = sum(1 for a in records.answers if a[1] == 0)
    found.counts["answers_429"] = sum(1 for a in records.answers if a[1] == 429)
