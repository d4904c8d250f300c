"""Retries over real HTTP against a scripted server (429, 503, slow answers, the future routes'
contract): backoff, Retry-After, and never repeating a POST that has no Idempotency-Key."""

from __future__ import annotations

import json
import time

import pytest

from lunos_client import (
    APIConnectionError,
    AsyncLunosClient,
    BadRequestError,
    LunosClient,
    RateLimitError,
    ServerError,
    calls,
)
from tests.client_support import in_thread
from tests.scripted_server import Reply, scripted_server

pytestmark = pytest.mark.anyio

PENDING = {"id": "video-op:u:1", "operation_name": "operations/x/1", "status": "pending"}


async def test_submit_is_retried_with_one_idempotency_key_and_honours_retry_after() -> None:
    async with scripted_server(
        Reply(429, {"error": "Rate limit exceeded"}, {"Retry-After": "1"}),
        Reply(503, {"error": "Service temporarily unavailable"}),
        Reply(200, PENDING),
    ) as server:
        async with AsyncLunosClient("lun_key", base_url=server.url, app_id="app-1") as lunos:
            started = time.monotonic()
            created = await lunos.video.generate("A lion")
            elapsed = time.monotonic() - started
    assert created.id == "video-op:u:1"
    assert elapsed >= 1.0  # waited as long as Retry-After asked
    keys = {seen.headers["idempotency-key"] for seen in server.seen}
    assert len(server.seen) == 3 and len(keys) == 1 and keys != {""}
    assert all(seen.headers["authorization"] == "Bearer lun_key" for seen in server.seen)
    assert all(seen.headers["x-app-id"] == "app-1" for seen in server.seen)
    assert json.loads(server.seen[0].body)["prompt"] == "A lion"


async def test_a_chosen_idempotency_key_is_sent_and_a_slow_answer_is_retried() -> None:
    async with scripted_server(Reply(200, PENDING, delay=2), Reply(200, PENDING)) as server:
        async with AsyncLunosClient("lun_key", base_url=server.url, timeout=0.5) as lunos:
            await lunos.video.generate("A lion", idempotency_key="order-42")
    assert [seen.headers["idempotency-key"] for seen in server.seen] == ["order-42", "order-42"]


async def test_what_is_not_retried() -> None:
    async with scripted_server(
        Reply(429, {"error": "Rate limit exceeded"}, {"Retry-After": "3600"}),
        Reply(400, {"error": "Missing required fields: model and prompt"}),
        Reply(503, {"error": "down"}),
        *[Reply(503, {"error": "down"}) for _ in range(3)],
    ) as server:
        async with AsyncLunosClient("lun_key", base_url=server.url, max_retries=2) as lunos:
            with pytest.raises(RateLimitError) as limited:  # longer than max_retry_after_seconds
                await lunos.video.generate("A lion")
            assert limited.value.retry_after == 3600 and len(server.seen) == 1
            with pytest.raises(BadRequestError):
                await lunos.video.get_video_status("video-op:u:1")
            assert len(server.seen) == 2
            # A POST without an Idempotency-Key might have taken effect: it is never sent twice.
            with pytest.raises(ServerError):
                await lunos._transport.send(calls.Call("POST", "/v1/anything", json={}))
            assert len(server.seen) == 3
            with pytest.raises(ServerError) as down:  # retried max_retries times, then raised
                await lunos.video.get_video_status("video-op:u:1")
            assert down.value.status == 503 and len(server.seen) == 6


async def test_unreachable_server_is_a_connection_error() -> None:
    def scenario() -> None:
        with LunosClient("lun_key", base_url="http://127.0.0.1:9", max_retries=1) as lunos:
            with pytest.raises(APIConnectionError):
                lunos.video.get_video_status("video-op:u:1")

    await in_thread(scenario)


async def test_cancel_and_list_speak_the_documented_contract() -> None:
    page = {
        "data": [{"id": "video-op:u:2", "status": "completed", "video_url": "http://v/2.mp4"}],
        "next_after": "c2",
    }
    async with scripted_server(
        Reply(200, {"id": "video-op:u:1", "status": "cancelled"}), Reply(200, page)
    ) as server:
        async with AsyncLunosClient("lun_key", base_url=server.url) as lunos:
            cancelled = await lunos.video.cancel("video-op:u:1")
            listed = await lunos.video.list(status="completed", app_id="a", limit=1, after="c1")
    assert cancelled.status == "cancelled"
    assert (server.seen[0].method, server.seen[0].path) == (
        "POST",
        "/v1/video/generations/video-op:u:1/cancel",
    )
    assert server.seen[0].headers["idempotency-key"]
    assert (server.seen[1].method, server.seen[1].path) == ("GET", "/v1/video/generations")
    assert server.seen[1].query == {"status": "completed", "app_id": "a", "limit": "1", "after": "c1"}
    assert [s.video_url for s in listed.data] == ["http://v/2.mp4"] and listed.next_after == "c2"
