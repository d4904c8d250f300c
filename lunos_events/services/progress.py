"""How long a model's generations and queue waits typically take, as observed: what progress and
ETA estimates (services/timing.py) are measured against.

A model's typical run time is the median of its last completed generations (start to end).
Figures are read from the database at most every `CACHE_SECONDS` per model.
"""

from __future__ import annotations

import time
from statistics import median

from sqlalchemy import bindparam, select
from sqlmodel import col

from lunos_events.store.models import COMPLETED, Operation
from lunos_events.store.transactions import Store

CACHE_SECONDS = 30.0
# Until a model's run time was observed: how long a Veo generation typically takes.
TYPICAL_PROVIDER_SECONDS = 60.0
SAMPLE = 50  # the last this many completions (or starts, for the wait) make the median

_RUNS = (
    select(col(Operation.completed_at_ms) - col(Operation.started_at_ms))
    .where(
        col(Operation.provider_model) == bindparam("model"),
        col(Operation.status) == COMPLETED,
        col(Operation.started_at_ms).is_not(None),
    )
    .order_by(col(Operation.completed_at_ms).desc())
    .limit(SAMPLE)
)
_WAITS = (
    select(col(Operation.started_at_ms) - col(Operation.queued_at_ms))
    .where(
        col(Operation.provider_model) == bindparam("model"),
        col(Operation.queued_at_ms).is_not(None),
        col(Operation.started_at_ms).is_not(None),
    )
    .order_by(col(Operation.started_at_ms).desc())
    .limit(SAMPLE)
)


class Latencies:
    def __init__(self, store: Store, fallback_seconds: float) -> None:
        self._store = store
        self._fallback = fallback_seconds
        self._cache: dict[tuple[str, str], tuple[float, float | None]] = {}

    async def _median(self, kind: str, model: str) -> float | None:
        cached = self._cache.get((kind, model))
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        rows = await self._store.all(_RUNS if kind == "run" else _WAITS, model=model)
        values = [max(0, ms) / 1000 for (ms,) in rows if ms is not None]
        figure = median(values) if values else None
        self._cache[kind, model] = (time.monotonic(), figure)
        return figure

    async def run_seconds(self, provider_model: str) -> float:
        """How long the provider typically takes (the fallback until something was observed)."""
        return await self._median("run", provider_model) or self._fallback

    async def wait_seconds(self, provider_model: str) -> float:
        """How long a queued operation typically waited for its start (0 when none had to)."""
        return await self._median("wait", provider_model) or 0.0
