"""Creating and starting generations, reading their status, cancelling them.

Submits come in through services/admission.py: `create`, then `launch`, then `start`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from lunos_events.bus.redis_bus import Bus
from lunos_events.catalog import Catalog
from lunos_events.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    ProviderStartFailed,
)
from lunos_events.ids import (
    OperationStamps,
    now_ms,
    operation_id,
    operation_owner,
    poster_key,
    sample_key,
    video_key,
)
from lunos_events.json_text import compact_json
from lunos_events.money import charged
from lunos_events.providers.base import VideoProvider
from lunos_events.services import idempotency
from lunos_events.services.accounts import Principal
from lunos_events.services.capacity import Capacity
from lunos_events.services.events import mark_published
from lunos_events.services.generation_request import GenerationRequest
from lunos_events.services.input_store import INPUTS, inputs_document, inputs_key, save_inputs
from lunos_events.services.lifecycle import (
    Lifecycle,
    NewOperation,
    create_operation,
)
from lunos_events.services.media_request import check_media
from lunos_events.services.outbox import Outbox
from lunos_events.services.progress import TYPICAL_PROVIDER_SECONDS, Latencies
from lunos_events.services.progress_reports import ProgressReports
from lunos_events.services.provider_jobs import STARTS_IN_WORKER
from lunos_events.services.queue_positions import QueuePositions
from lunos_events.services.running_statuses import Running, RunningStatuses
from lunos_events.services.starts import Starter
from lunos_events.services.status import status_object
from lunos_events.services.timing import timing
from lunos_events.settings import Settings
from lunos_events.storage.base import VideoStorage
from lunos_events.store.models import ACTIVE_STATUSES, CANCELLED, COMPLETED, PENDING, PROCESSING, Operation
from lunos_events.store.records import OperationStatus, StoredEvent
from lunos_events.store.transactions import Store
from lunos_events.url_guard import resolve_target

log = logging.getLogger(__name__)

_ID_ATTEMPTS = 64


def new_operation(
    principal: Principal,
    request: GenerationRequest,
    stamp_ms: int,
    deadline_seconds: float,
    inputs: str | None = None,
) -> NewOperation:
    created = now_ms()
    extra: dict[str, Any] = {}
    if request.sample_count != 1:
        extra["sampleCount"] = request.sample_count
    if inputs is not None:
        extra[INPUTS] = inputs
        if request.media.fetches:
            extra[STARTS_IN_WORKER] = True
    return NewOperation(
        id=operation_id(principal.account_id, stamp_ms),
        account_id=principal.account_id,
        app_id=request.app_id,
        model=request.model.id,
        provider_model=request.model.provider_model,
        prompt=request.prompt,
        parameters={
            "aspectRatio": request.aspect_ratio,
            "negativePrompt": request.negative_prompt,
            "durationSeconds": request.duration_seconds,
            "response_format": request.response_format,
            **request.options,
            **extra,
        },
        video_key=video_key(principal.account_id, stamp_ms),
        cost_cents=request.cost_cents,
        created_at_ms=created,
        deadline_at_ms=created + int(deadline_seconds * 1000),
        has_request_webhook=request.webhook is not None,
    )


class Generations:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        provider: VideoProvider,
        storage: VideoStorage,
        settings: Settings,
        running: RunningStatuses,
        catalog: Catalog,
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.running = running
        self._provider = provider
        self._storage = storage
        self._stamps = OperationStamps()
        self.outbox = Outbox(store, bus)
        self.lifecycle = Lifecycle(store, storage, bus, self.outbox, running, settings)
        local = settings.resolved_provider() == "local"
        typical = settings.simulator_latency_seconds if local else TYPICAL_PROVIDER_SECONDS
        self.latencies = Latencies(store, typical)
        self.queue_positions = QueuePositions(store, settings.queue_weight)
        self.progress_reports = ProgressReports(
            store,
            bus,
            self.outbox,
            self.latencies,
            settings.progress_event_seconds,
            settings.poll_interval_seconds,
        )
        self.starter = Starter(
            store,
            provider,
            storage,
            Capacity(bus, settings, catalog),
            self.lifecycle,
            self.latencies,
            bus,
            settings.poll_interval_seconds,
        )

    async def check_inputs(self, principal: Principal, request: GenerationRequest) -> None:
        """Refuse unusable media inputs (400, or 404 for a video to extend that is not the
        account's); run before anything is taken or charged."""
        await check_media(request.media, allow_private=self.settings.input_url_allow_private)
        if request.media.video_operation is not None:
            await self._video_to_extend(principal, request.media.video_operation)

    async def _video_to_extend(self, principal: Principal, op_id: str) -> str:
        """The stored video key of the account's completed operation `op_id`."""
        row = None
        if operation_owner(op_id) == principal.account_id:
            row = await self.store.operation_status(op_id, principal.account_id)
        if row is None:
            raise NotFound("Operation not found")
        if row.status != COMPLETED:
            raise InvalidRequest(f"Operation {op_id} is {row.status}: only a completed video can be extended")
        return row.video_key

    async def create(
        self, principal: Principal, request: GenerationRequest, claim: idempotency.Claim | None = None
    ) -> tuple[NewOperation, StoredEvent]:
        """Charge and record the pending operation and its event; nothing is published or started yet.

        Media inputs are stored first, so that the operation never exists without them. With an
        Idempotency-Key's claim, the operation is recorded on it in the same transaction.
        """
        if request.webhook is not None:
            await resolve_target(request.webhook.url, self.settings.webhook_allow_private)
        inputs = None
        if not request.media.empty:
            extended = request.media.video_operation
            video = await self._video_to_extend(principal, extended) if extended else None
            inputs = inputs_key(principal.account_id)
            await save_inputs(self._storage, inputs, inputs_document(request.media, video))
        try:
            return await self._create(principal, request, inputs, claim)
        except BaseException:
            if inputs is not None:
                await self._storage.delete(inputs)
            raise

    async def _create(
        self,
        principal: Principal,
        request: GenerationRequest,
        inputs: str | None,
        claim: idempotency.Claim | None,
    ) -> tuple[NewOperation, StoredEvent]:
        deadline = self.settings.operation_deadline_seconds
        for _ in range(_ID_ATTEMPTS):
            op = new_operation(principal, request, self._stamps.next(principal.account_id), deadline, inputs)
            try:
                async with self.store.transaction() as tx:
                    event = await create_operation(tx, op, request.webhook)
                    if claim is not None:
                        await idempotency.record_operation(tx, principal.account_id, claim, op.id)
                    return op, event
            except IntegrityError:
                continue  # another API process took this id: the next stamp is past it
        raise RuntimeError("could not allocate an operation id")

    async def launch(self, op: NewOperation, event: StoredEvent) -> None:
        """What must precede the provider call: the `video.pending` event goes out, tracking is queued.

        Tracking is queued before the provider is called: if this process dies mid-start, the
        tracker notices the operation never started and refunds it.
        """
        await asyncio.gather(
            self.outbox.ring(event),
            self.bus.enqueue_tracking(op.id, self.settings.poll_interval_seconds),
        )

    async def start(self, op: NewOperation, published: StoredEvent) -> dict[str, Any]:
        """Start a launched operation at the provider, or queue it when no credential has room; a
        refusal fails and refunds it (502).

        `published` is the operation's event, released with the launch: it is marked published in
        the same commit that records the provider's operation name.
        """
        if op.parameters.get(STARTS_IN_WORKER):
            # Its image URLs are fetched by the worker, which then starts it.
            await mark_published(self.store, published)
            return {"id": op.id, "status": PENDING, **charged(op.cost_cents)}
        outcome, name = await self.starter.admit(op, published)
        if name is None:
            await mark_published(self.store, published)
        if outcome == "failed":
            raise ProviderStartFailed()
        started = {"operation_name": name} if name else {}
        return {"id": op.id, **started, "status": PENDING, **charged(op.cost_cents)}

    async def status(self, principal: Principal, op_id: str) -> dict[str, Any]:
        return await self._status(principal.account_id, op_id)

    async def current_state(self, event: StoredEvent) -> StoredEvent:
        """An active operation's latest stored event, its timing as of now: progress, ETA and
        queue position move between events, and a stream's first frame should not show them as
        they were when it was stored. Unchanged if the status itself has moved on since (its own
        event follows)."""
        stored = json.loads(event.data)
        if stored.get("status") not in ACTIVE_STATUSES:
            return event
        current = await self._status(event.account_id, event.operation_id)
        if current["status"] != stored["status"]:
            return event
        return replace(event, data=compact_json({**stored, **current}))

    async def _status(self, account_id: str, op_id: str) -> dict[str, Any]:
        # Another account's id answers exactly like an unknown one: existence is never revealed.
        if operation_owner(op_id) != account_id:
            raise NotFound("Operation not found")
        running = self.running.known_running(op_id)
        if running is not None:
            run_seconds = await self.latencies.run_seconds(running.provider_model)
            times = timing(
                PROCESSING,
                running.created_at_ms,
                running.started_at_ms,
                None,
                run_seconds=run_seconds,
                at_ms=now_ms(),
            )
            return status_object(op_id, PROCESSING, None, None, timing=times)
        version = self.running.version
        row = await self.store.operation_status(op_id, account_id)
        if row is None:
            raise NotFound("Operation not found")
        if row.status == PROCESSING and row.error is None and row.started_at_ms is not None:
            # What the answer from memory says.
            self.running.remember(
                op_id, version, Running(row.created_at_ms, row.started_at_ms, row.provider_model)
            )
        video_url, outcome = row.video_url, row.outcome
        if video_url and row.status == COMPLETED:
            video_url, outcome = await self._fresh_links(op_id, row.video_key, video_url, outcome)
        times = await self._timing(op_id, row)
        return status_object(op_id, row.status, video_url, row.error, row.error_code, outcome, times)

    async def _timing(self, op_id: str, row: OperationStatus) -> dict[str, Any]:
        queued = None
        if row.status == PENDING and row.queued_at_ms is not None:
            queued = await self.queue_positions.spot(op_id, row.provider_model)
        active = row.status in ACTIVE_STATUSES
        run_seconds = await self.latencies.run_seconds(row.provider_model) if active else 0.0
        return timing(
            row.status,
            row.created_at_ms,
            row.started_at_ms,
            row.completed_at_ms,
            run_seconds=run_seconds,
            at_ms=now_ms(),
            queued=queued,
        )

    async def relink(self, op: Operation) -> tuple[str, dict[str, Any] | None]:
        """A completed operation's video URL and outcome, re-signed where about to expire
        (history.Relink: what a list shows)."""
        return await self._fresh_links(op.id, op.video_key, op.video_url or "", op.outcome)

    async def _fresh_links(
        self, op_id: str, key: str, video_url: str, outcome: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        video_url = await self.refreshed_video_url(op_id, key, video_url)
        if outcome:
            outcome = await self._refreshed_outcome(key, video_url, outcome)
        return video_url, outcome

    async def _refreshed_outcome(self, key: str, video_url: str, outcome: dict[str, Any]) -> dict[str, Any]:
        """The outcome's URLs, re-signed where they are about to expire (not stored: they are cheap)."""
        fresh = dict(outcome)
        urls = outcome.get("video_urls") or []
        if urls:
            fresh["video_urls"] = [video_url] + [
                await self._storage.refresh_url(sample_key(key, i), url) or url
                for i, url in enumerate(urls)
                if i > 0
            ]
        if outcome.get("thumbnail_url"):
            poster = poster_key(key)
            thumbnail = outcome["thumbnail_url"]
            fresh["thumbnail_url"] = await self._storage.refresh_url(poster, thumbnail) or thumbnail
        return fresh

    async def refreshed_video_url(self, op_id: str, key: str, url: str) -> str:
        """Re-sign a presigned video URL that is close to expiry, and keep the new one."""
        fresh = await self._storage.refresh_url(key, url)
        if fresh is None:
            return url
        async with self.store.transaction() as tx:
            await tx.execute(
                update(Operation)
                .where(col(Operation.id) == op_id, col(Operation.video_url) == url)
                .values(video_url=fresh)
            )
        return fresh

    async def cancel(self, principal: Principal, op_id: str) -> dict[str, Any]:
        """Cancel a pending operation: refunded, with its `video.cancelled` event; 409 once it has ended."""
        await self.status(principal, op_id)  # 404 for unknown ids and other accounts' alike
        cancelled = await self.lifecycle.finish(op_id, CANCELLED, refund=True) is not None
        current = await self.status(principal, op_id)
        if cancelled:
            return current
        raise Conflict(f"Operation is already {current['status']} and cannot be cancelled")
