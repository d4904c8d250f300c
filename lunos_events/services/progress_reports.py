"""`video.progress`: a running operation's estimated progress, at most every
LUNOS_PROGRESS_EVENT_SECONDS (5), reported by its tracking polls.

A report changes nothing stored about the operation, and a stream needs no replay of it (the next
report, or a poll, tells the same), so it is not stored: it goes out on Redis as a transient event
(seq 0: no SSE id, never replayed). Only when a webhook asked for `video.progress` is it stored,
numbered and delivered like any event, because a delivery is retried from its stored rows.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from sqlalchemy import String, bindparam, cast, exists, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from lunos_events.bus.redis_bus import Bus
from lunos_events.ids import now_ms
from lunos_events.json_text import compact_json
from lunos_events.services.events import append_event
from lunos_events.services.outbox import Outbox
from lunos_events.services.progress import Latencies
from lunos_events.services.status import PROGRESS_EVENT, status_object
from lunos_events.services.timing import timing
from lunos_events.store.models import PROCESSING, Operation
from lunos_events.store.records import TRANSIENT_SEQ, StoredEvent
from lunos_events.store.transactions import Store
from lunos_events.store.webhook_models import OperationWebhook, WebhookEndpoint

log = logging.getLogger(__name__)

ASKED_SECONDS = 30.0
MAX_KEPT = 100_000


# A cheap first look (one read, no transaction) at whether any webhook asked for progress: the
# event filters are JSON lists of strings, so the quoted type appears in their text exactly then.
_ASKED = f'%"{PROGRESS_EVENT}"%'
_ANY_PROGRESS_WEBHOOK = select(
    or_(
        exists().where(
            col(WebhookEndpoint.account_id) == bindparam("account_id"),
            col(WebhookEndpoint.enabled).is_(True),
            cast(col(WebhookEndpoint.events), String).like(_ASKED),
        ),
        exists().where(
            col(OperationWebhook.operation_id) == bindparam("operation_id"),
            cast(col(OperationWebhook.events), String).like(_ASKED),
        ),
    )
)


class ProgressReports:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        outbox: Outbox,
        latencies: Latencies,
        every_seconds: float,
        poll_interval_seconds: float,
    ) -> None:
        self._every_seconds = every_seconds
        # An operation's polls (one tracking job at a time) are at least this far apart: when that is
        # as far as reports must be, each poll may report without asking Redis whose turn it is.
        self._polls_far_enough = poll_interval_seconds >= every_seconds
        # operation id -> (time.monotonic() until which it is kept, whether a webhook asked for progress)
        self._asked: dict[str, tuple[float, bool]] = {}
        self._store = store
        self._bus = bus
        self._outbox = outbox
        self._latencies = latencies

    async def report(self, op: Operation) -> StoredEvent | None:
        """Send `op`'s progress unless one was sent less than `every_seconds` ago (by any process);
        returns the event sent, or None. Best effort: an outage skips the report, never the poll."""
        if op.status != PROCESSING or op.started_at_ms is None:
            return None
        if now_ms() - op.started_at_ms < self._every_seconds * 1000:
            return None  # its video.processing event told its progress at the start
        try:
            return await self._report(op, op.started_at_ms)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            log.warning("progress of %s not reported: %s", op.id, exc)
            return None

    async def _report(self, op: Operation, started_at_ms: int) -> StoredEvent | None:
        if not self._polls_far_enough and not await self._bus.take_turn(
            f"progress:{op.id}", self._every_seconds
        ):
            return None
        now = now_ms()
        run_seconds = await self._latencies.run_seconds(op.provider_model)
        times = timing(PROCESSING, op.created_at_ms, started_at_ms, None, run_seconds=run_seconds, at_ms=now)
        data = status_object(op.id, PROCESSING, None, None, timing=times)
        if await self._webhook_asked(op):
            async with self._store.transaction() as tx:
                # Delivered to the webhooks that asked for it (per endpoint app, as every event).
                event = await append_event(
                    tx,
                    account_id=op.account_id,
                    operation_id=op.id,
                    app_id=op.app_id,
                    type=PROGRESS_EVENT,
                    data=data,
                )
            await self._outbox.release(event)
            return event
        event = StoredEvent(
            op.account_id, TRANSIENT_SEQ, op.id, op.app_id, PROGRESS_EVENT, compact_json(data), now
        )
        await self._bus.publish(event)
        return event

    async def _webhook_asked(self, op: Operation) -> bool:
        """Whether a webhook asked for `op`'s progress, read at most every `ASKED_SECONDS` per
        operation: an endpoint that subscribes meanwhile gets the reports from then on."""
        now = time.monotonic()
        kept = self._asked.get(op.id)
        if kept is not None and kept[0] > now:
            return kept[1]
        asked = bool(
            await self._store.scalar(_ANY_PROGRESS_WEBHOOK, account_id=op.account_id, operation_id=op.id)
        )
        if len(self._asked) >= MAX_KEPT:
            self._asked = {k: v for k, v in self._asked.items() if v[0] > now}
            if len(self._asked) >= MAX_KEPT:
                self._asked.clear()
        self._asked[op.id] = (now + ASKED_SECONDS, asked)
        return asked
