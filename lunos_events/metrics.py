"""Prometheus metrics: request counts and latency per route, and state read at scrape time.

Per-process counters (requests) live in the process's registry; figures that must agree across
replicas (operations by status, queue depth) are read from the database and Redis when scraped.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lunos_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lunos_http_request_duration_seconds",
            "Time to the end of the response, per route (event streams excluded: they stay open).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self, state: list[GaugeMetricFamily]) -> bytes:
        """The exposition text: this process's counters, then the state read for this scrape."""
        snapshot = CollectorRegistry(auto_describe=False)
        snapshot.register(_Fixed(state))
        return generate_latest(self.registry) + generate_latest(snapshot)


class _Fixed:
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
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


class MetricsMiddleware:
    """Counts every response by its route template (never the raw path: ids would explode labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = {route.endpoint: route.path for route in routes if isinstance(route, Route)}
        # Labelled children by label values: `labels()` costs more than the observation itself.
        self._counts: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        streaming = False

        async def observed_send(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = any(
                    name == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = self.templates.get(scope.get("endpoint"), UNMATCHED)
            method = scope["method"]
            count = self._counts.get((method, route, status))
            if count is None:
                count = self._counts[method, route, status] = self.metrics.requests.labels(
                    method, route, str(status)
                )
            count.inc()
            if not streaming:
                latency = self._latencies.get((method, route))
                if latency is None:
                    latency = self._latencies[method, route] = self.metrics.latency.labels(method, route)
                latency.observe(time.perf_counter() - started)
