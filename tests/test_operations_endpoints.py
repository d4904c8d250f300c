"""What operators see: /readyz, /metrics (Prometheus text), JSON logs carrying the operation id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.logs import JsonFormatter, operation_context
from lunos_events.metrics import Metrics
from lunos_events.serving import running_service
from tests.conftest import auth, create_user, make_settings
from tests.helpers import generation_body, wait_for_status

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


METRICS_TOKEN = "scrape-0123456789abcdef"


@pytest.mark.settings(metrics_token=METRICS_TOKEN)
async def test_metrics_count_requests_by_route_and_report_state(service, client) -> None:
    key = await create_user(service, "observed")
    op = (await client.post("/v1/video/generations", headers=auth(key), json=generation_body())).json()
    await wait_for_status(client, op["id"], auth(key))
    await client.get("/v1/video/generations/video-op:observed:1", headers=auth(key))  # 404
    await client.get("/no/such/path")

    async with client.stream("GET", "/v1/video/events", headers=auth(key)):
        response = await client.get("/metrics", headers=auth(METRICS_TOKEN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    route = "/v1/video/generations/{operation_id}"
    assert (
        values[
            (
                "lunos_http_requests_total",
                (("method", "POST"), ("route", "/v1/video/generations"), ("status", "200")),
            )
        ]
        == 1
    )
    assert (
        values[("lunos_http_requests_total", (("method", "GET"), ("route", route), ("status", "404")))] == 1
    )
    assert (
        values[("lunos_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))]
        == 1
    )
    polls = values[("lunos_http_requests_total", (("method", "GET"), ("route", route), ("status", "200")))]
    assert polls >= 1
    poll_labels = (("method", "GET"), ("route", route))
    assert values[("lunos_http_request_duration_seconds_count", poll_labels)] == polls + 1
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in values.items()
        if name == "lunos_http_request_duration_seconds_bucket"
        and (dict(labels)["method"], dict(labels)["route"]) == ("GET", route)
    )
    counts = [value for _, value in buckets]
    assert counts == sorted(counts) and buckets[-1] == (float("inf"), polls + 1)  # cumulative
    assert 0 < values[("lunos_http_request_duration_seconds_sum", poll_labels)] < 30
    # The open event stream is counted from its start; it stays open, so it has no latency.
    stream_labels = (("method", "GET"), ("route", "/v1/video/events"))
    assert values[("lunos_http_requests_total", (*stream_labels, ("status", "200")))] == 1
    assert ("lunos_http_request_duration_seconds_count", stream_labels) not in values
    assert values[("lunos_operations", (("status", "completed"),))] == 1
    assert values[("lunos_operations", (("status", "pending"),))] == 0
    assert values[("lunos_sse_connections", ())] == 1
    assert ("lunos_queue_depth", ()) in values
    assert values[("lunos_webhook_attempts", (("outcome", "success"),))] == 0


@pytest.mark.settings(metrics_token=METRICS_TOKEN)
async def test_metrics_need_the_metrics_token(service, client) -> None:
    key = await create_user(service, "curious")
    for headers in ({}, auth(key), auth(METRICS_TOKEN + "x"), {"Authorization": METRICS_TOKEN}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "LUNOS_METRICS_TOKEN" in refused.json()["error"]
        assert "lunos_operations" not in refused.text
    assert (await client.get("/metrics", headers=auth(METRICS_TOKEN))).status_code == 200


async def test_metrics_are_off_without_a_token(service, client) -> None:
    refused = await client.get("/metrics")
    assert refused.status_code == 403
    assert refused.json() == {"error": "Metrics are off: the server has no LUNOS_METRICS_TOKEN"}


@pytest.mark.settings(metrics_open=True)
async def test_metrics_open_serves_anyone(service, client) -> None:
    assert (await client.get("/metrics")).status_code == 200


async def test_readyz_follows_redis(tmp_path: Path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis")
    redis_server.start()
    try:
        settings = make_settings(tmp_path, redis_server.url)
        async with (
            running_service(settings, worker=False),
            httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=10) as client,
        ):
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            checks = {"database": "ok", "redis": "ok", "provider": {"default": "ok"}}
            unlimited = {"starts_per_minute": None, "max_in_flight": None}
            models = dict.fromkeys(("veo-3.1-generate-001", "veo-3.1-fast-generate-001"), unlimited)
            capacity = {"default": {"in_flight": 0, "models": models}}
            assert ready.json() == {"status": "ready", "checks": checks, "provider_capacity": capacity}
            redis_server.stop()
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["checks"] == {"database": "ok", "redis": "unreachable"}
            assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
            redis_server.start()
            assert (await client.get("/readyz")).status_code == 200
    finally:
        redis_server.stop()


def test_json_logs_carry_the_operation_id() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "lunos_events.worker", logging.WARNING, __file__, 1, "poll failed: %s", ("boom",), None
    )
    with operation_context("video-op:u:1"):
        inside = json.loads(formatter.format(record))
    outside = json.loads(formatter.format(record))
    assert inside["operation_id"] == "video-op:u:1" and inside["message"] == "poll failed: boom"
    assert inside["level"] == "WARNING" and inside["logger"] == "lunos_events.worker"
    assert "operation_id" not in outside


def test_a_latency_counts_in_every_bucket_at_or_above_it() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.001, 0.003, 20.0):
        metrics.observe("GET", "/x", 200, seconds)
    metrics.observe("GET", "/x", 200, None)  # an event stream: counted, not timed
    values = samples(metrics.render([]).decode())

    def bucket(le: str) -> float:
        labels = (("le", le), ("method", "GET"), ("route", "/x"))
        return values[("lunos_http_request_duration_seconds_bucket", labels)]

    assert [bucket(le) for le in ("0.001", "0.0025", "0.005", "10.0", "+Inf")] == [2, 2, 3, 3, 4]
    route = (("method", "GET"), ("route", "/x"))
    assert values[("lunos_http_request_duration_seconds_sum", route)] == 20.0045
    assert values[("lunos_http_requests_total", (("method", "GET"), ("route", "/x"), ("status", "200")))] == 5
