"""The provider capacity's figures for /metrics and /readyz: queue depth per model, how long
operations waited, starts by credential and outcome, each credential's health, and its effective
limits per upstream model (the tighter of the settings' and the catalog's)."""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from itertools import accumulate
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import select
from sqlmodel import col

from lunos_events.ids import now_ms
from lunos_events.runtime import Runtime
from lunos_events.services.fair_queue import queue_depths
from lunos_events.store.models import Operation

WAIT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_WAIT_WINDOW_MS = 3_600_000  # the histogram covers the starts of the last hour


async def provider_report(rt: Runtime) -> tuple[dict[str, str], dict[str, Any]]:
    """Each credential: "ok", "cooling" (answered 429/5xx lately) or "out" (its key was refused);
    and its capacity: operations in flight, and per upstream model its limits (null: unlimited)."""
    capacity = rt.generations.starter.capacity
    health = await capacity.health()
    limits = capacity.limits()
    report = {
        name: {
            "in_flight": used,
            "models": {model: dataclasses.asdict(lim) for model, lim in limits.get(name, {}).items()},
        }
        for name, (_, used) in health.items()
    }
    return {name: state for name, (state, _) in health.items()}, report


async def capacity_metrics(rt: Runtime) -> list[Metric]:
    capacity = rt.generations.starter.capacity
    depth = GaugeMetricFamily(
        "lunos_provider_queue_depth", "Operations waiting for provider capacity.", labels=["model"]
    )
    for model, count in sorted((await queue_depths(rt.store)).items()):
        depth.add_metric([model], count)
    up = GaugeMetricFamily(
        "lunos_provider_credential_up",
        "1 while a credential takes starts (0: cooling or out).",
        labels=["credential"],
    )
    in_flight = GaugeMetricFamily(
        "lunos_provider_in_flight", "Operations running per credential.", labels=["credential"]
    )
    for name, (state, used) in sorted((await capacity.health()).items()):
        up.add_metric([name], 1.0 if state == "ok" else 0.0)
        in_flight.add_metric([name], used)
    limit = GaugeMetricFamily(
        "lunos_provider_limit",
        "A credential's effective limit on an upstream model (absent: unlimited).",
        labels=["credential", "model", "limit"],
    )
    for name, models in sorted(capacity.limits().items()):
        for model, limits in sorted(models.items()):
            for kind, value in sorted(dataclasses.asdict(limits).items()):
                if value is not None:
                    limit.add_metric([name, model, kind], value)
    starts = CounterMetricFamily(
        "lunos_provider_starts", "Start attempts by credential and outcome.", labels=["credential", "outcome"]
    )
    for (name, outcome), count in sorted((await capacity.start_counts()).items()):
        starts.add_metric([name, outcome], count)
    return [depth, up, in_flight, limit, starts, await _wait_histogram(rt)]


async def _wait_histogram(rt: Runtime) -> Metric:
    since = now_ms() - _WAIT_WINDOW_MS
    waited = col(Operation.started_at_ms) - col(Operation.queued_at_ms)
    rows = await rt.store.all(
        select(waited).where(col(Operation.queued_at_ms).is_not(None), col(Operation.started_at_ms) > since)
    )
    counts = [0] * (len(WAIT_BUCKETS) + 1)
    total = 0.0
    for (ms,) in rows:
        seconds = max(0, ms or 0) / 1000
        counts[bisect_left(WAIT_BUCKETS, seconds)] += 1
        total += seconds
    bounds = [str(b) for b in WAIT_BUCKETS] + ["+Inf"]
    return HistogramMetricFamily(
        "lunos_provider_queue_wait_seconds",
        "How long started operations waited in the queue (last hour).",
        buckets=list(zip(bounds, accumulate(counts), strict=True)),
        sum_value=total,
    )
