"""Two API server processes, one worker process, one Redis: events cross processes through pub/sub."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lunos_events.runtime import open_runtime
from lunos_events.settings import Settings
from tests.conftest import auth, create_user, free_port
from tests.helpers import generation_body
from tests.processes import settings_env, spawn
from tests.sse import SseReader

pytestmark = pytest.mark.anyio


@contextmanager
def processes(*started: subprocess.Popen[str]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            output, _ = process.communicate(timeout=30)
            if process.returncode not in (0, -15):
                print(output)


async def wait_until_up(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        with anyio.fail_after(30):
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)


async def frozen_objects(base_url: str) -> float:
    """The server's `lunos_gc_frozen_objects`, once its start-up has finished."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        with anyio.fail_after(30):
            while True:
                families = text_string_to_metric_families((await http.get("/metrics")).text)
                frozen = next(f for f in families if f.name == "lunos_gc_frozen_objects").samples[0].value
                if frozen:
                    return frozen
                await anyio.sleep(0.1)


@pytest.mark.settings(metrics_open=True)
async def test_a_subscriber_on_one_process_sees_jobs_submitted_through_another(settings: Settings) -> None:
    async with open_runtime(settings) as rt:
        key = await create_user(rt, "roamer")
    port_a, port_b = free_port(), free_port()
    base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    with processes(
        spawn("serve", "--port", str(port_a), env=settings_env(settings, LUNOS_PORT=str(port_a))),
        spawn("serve", "--port", str(port_b), env=settings_env(settings, LUNOS_PORT=str(port_b))),
        spawn("worker", env=settings_env(settings)),
    ):
        await wait_until_up(base_a)
        await wait_until_up(base_b)
        # Each server has left what its start-up built out of garbage collection (a speed matter).
        assert await frozen_objects(base_a) > 10_000 and await frozen_objects(base_b) > 10_000
        async with (
            httpx.AsyncClient(base_url=base_a, timeout=30) as on_a,
            httpx.AsyncClient(base_url=base_b, timeout=30) as on_b,
            on_a.stream("GET", "/v1/video/events", headers=auth(key)) as account_stream,
        ):
            assert account_stream.status_code == 200
            submitted = await on_b.post("/v1/video/generations", headers=auth(key), json=generation_body())
            assert submitted.status_code == 200, submitted.text
            op = submitted.json()

            # B's events_url token opens the operation's stream on A: the processes share the secret.
            token_path = op["events_url"].removeprefix(base_b)
            async with on_a.stream("GET", token_path) as operation_stream:
                assert operation_stream.status_code == 200
                operation_events = await SseReader(operation_stream).rest(timeout=60)
            assert [e.event for e in operation_events][-1] == "video.completed"

            account_events = await SseReader(account_stream).take(3, timeout=60)
            assert [(e.event, e.json()["id"]) for e in account_events] == [
                ("video.pending", op["id"]),
                ("video.processing", op["id"]),
                ("video.completed", op["id"]),
            ]
            polled = (await on_a.get(f"/v1/video/generations/{op['id']}", headers=auth(key))).json()
            polled.pop("events_url")
            assert account_events[-1].json() == polled and polled["status"] == "completed"
