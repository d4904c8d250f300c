"""Prometheus metrics: request counts and latency per route, and state read at scrape time.

Per-process figures (requests) are kept by this process; figures that must agree across replicas
(operations by status, queue depth) are read from the database and Redis when scraped.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable
from itertools import accumulate

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BUCKET_LABELS: tuple[str, ...] = (
    # prometheus_client leaves floatToGoString unannotated (it takes a float, returns a str).
    *(floatToGoString(bound) for bound in LATENCY_BUCKETS),  # type: ignore[no-untyped-call]
    "+Inf",
)
UNMATCHED = "unmatched"


class _Latency:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(_BUCKET_LABELS)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0


class Metrics:
    """This process's request figures, as plain numbers turned into Prometheus families when scraped.

    Only the event loop updates them, so they need no lock: prometheus_client's labelled Counter and
    Histogram take one per update, which came to ~10 µs a request, a tenth of a status poll.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latencies: dict[tuple[str, str], _Latency] = {}

    def observe(self, method: str, route: str, status: int, seconds: float | None) -> None:
        """Count one response; `seconds` is its latency, None for an event stream (it stays open)."""
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if seconds is not None:
            latency = self.latencies.get((method, route))
            if latency is None:
                latency = self.latencies[method, route] = _Latency()
            latency.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # `le`: bound >= seconds
            latency.total += seconds

    def render(self, state: list[Metric]) -> bytes:
        """The exposition text: this process's request figures, then the state read for this scrape."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed([*self._families(), *state]))
        return generate_latest(registry)

    def _families(self) -> list[Metric]:
        requests = CounterMetricFamily(
            "lunos_http_requests", "HTTP requests by route and status.", labels=["method", "route", "status"]
        )
        for (method, route, status), count in sorted(self.requests.items()):
            requests.add_metric([method, route, str(status)], count)
        latency = HistogramMetricFamily(
            "lunos_http_request_duration_seconds",
            "Time to the end of the response, per route (event streams excluded: they stay open).",
            labels=["method", "route"],
        )
        for (method, route), figures in sorted(self.latencies.items()):
            buckets = list(zip(_BUCKET_LABELS, accumulate(figures.counts), strict=True))
            latency.add_metric([method, route], buckets=buckets, sum_value=figures.total)
        return [requests, latency]


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def gauge(
    name: str, documentation: str, values: dict[str, float] | float, label: str = ""
) -> GaugeMetricFamily:
    if isinstance(values, dict):
        family = GaugeMetricFamily(name, documentation, labels=[label])
        for key, value in sorted(values.items()):
            family.add_metric([key], value)
        return family
    return GaugeMetricFamily(name, documentation, value=values)


# Both event-stream routes end so (api/streams.py), and no other route does.
STREAM_PATH_SUFFIX = "/events"


class MetricsMiddleware:
    """Counts every response by its route template (never the raw path: ids would explode labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        # Keyed by endpoint; looked up with whatever the router left in the scope (possibly nothing).
        self.templates: dict[object, str] = {
            route.endpoint: route.path for route in routes if isinstance(route, Route)
        }

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        if scope["method"] == "GET" and scope["path"].endswith(STREAM_PATH_SUFFIX):
            # An event stream stays open as long as its client likes, and has no latency to record:
            # it is counted when its response starts, and no frame of this middleware lives as long
            # as it does (that frame and its closure were ~0.7 KB of every idle stream).
            return self.app(scope, receive, _CountedAtStart(self, scope, send))
        return self._observed(scope, receive, send)

    def count(self, scope: Scope, status: int, latency: float | None) -> None:
        route = self.templates.get(scope.get("endpoint"), UNMATCHED)
        self.metrics.observe(scope["method"], route, status, latency)

    async def _observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.count(scope, status, time.perf_counter() - started)


class _CountedAtStart:
    """The `send` of an event stream: counts its response as it starts."""

    __slots__ = ("middleware", "scope", "send")

    def __init__(self, middleware: MetricsMiddleware, scope: Scope, send: Send) -> None:
        self.middleware = middleware
        self.scope = scope
        self.send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.middleware.count(self.scope, message["status"], None)
        await self.send(message)
