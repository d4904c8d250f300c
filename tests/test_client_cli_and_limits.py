"""The `generate` command against a live server, and the client meeting real tier limits (429)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import func, select

from lunos_client import AsyncLunosClient, RateLimitError
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.store.models import Operation
from tests.conftest import auth, create_user
from tests.fake_google import FakeGoogle, FakeGoogleServer
from tests.helpers import generation_body, probe_mp4
from tests.processes import run
from tests.test_provider_capacity import pool_settings

pytestmark = pytest.mark.anyio


def cli_env(key: str, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")}
    return env | {"LUNOS_API_KEY": key, "LUNOS_BASE_URL": base_url}


def status_lines(stderr: str, op_id: str) -> list[tuple[str, str]]:
    """(status, detail) of each line the command printed about the operation."""
    lines = [line.split("  ", 2) for line in stderr.splitlines() if line.startswith(op_id + "  ")]
    return [(parts[1], parts[2] if len(parts) > 2 else "") for parts in lines]


PERCENT = re.compile(r"(\d+)% · ~(\d+) s left")


# A run of 3 s, reported every 0.3 s, printed at most every 0.8 s: a few progress lines.
@pytest.mark.settings(simulator_latency_seconds=3, progress_event_seconds=0.3)
async def test_generate_command_waits_and_downloads(service, tmp_path: Path) -> None:
    key = await create_user(service, "cli-user")
    out = tmp_path / "lion.mp4"
    env = cli_env(key, service.settings.resolved_public_base_url())
    # Blocking child process: run it off the event loop that serves its requests.
    result = await anyio.to_thread.run_sync(
        lambda: run(
            "generate", "A lion in the savannah", "--out", str(out), "--app-id", "cli",
            "--progress-every", "0.8", env=env,
        )
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    op_id = result.stderr.split()[0]
    lines = status_lines(result.stderr, op_id)
    # Each status once, in order, with progress lines in between while it is processing.
    assert [status for status, _ in lines if status != "processing"] == ["pending", "completed"]
    assert lines[0] == ("pending", "") and lines[-1][0] == "completed"
    assert lines[-1][1].startswith("http") and lines[-1][1].endswith(".mp4")
    running = [PERCENT.fullmatch(detail) for status, detail in lines if status == "processing"]
    assert all(running) and 2 <= len(running) <= 6, lines  # throttled: not one per report (~10)
    figures = [int(m.group(1)) for m in running if m]
    assert figures == sorted(figures) and figures[-1] <= 99 and figures[-1] > figures[0], lines
    assert probe_mp4(out.read_bytes())["codec"] == "h264"
    async with service.store.reading() as conn:
        app_ids = (
            await conn.execute(select(Operation.app_id).where(Operation.account_id == "cli-user"))
        ).all()
    assert [row.app_id for row in app_ids] == ["cli"]

    refused = await anyio.to_thread.run_sync(
        lambda: run("generate", "x", env=env | {"LUNOS_API_KEY": "lun_wrong"})
    )
    assert refused.returncode != 0 and "Invalid API key" in refused.stderr


async def test_generate_command_shows_its_place_in_the_queue(settings: Settings) -> None:
    # One provider slot, held by another account's video: the command's video waits first in line.
    with FakeGoogleServer(FakeGoogle(latency_seconds=3.0)) as server:
        settings = pool_settings(settings, server, 1, "key-a").model_copy(
            update={"progress_event_seconds": 0.3}
        )
        async with running_service(settings) as rt:
            other = await create_user(rt, "cli-other")
            key = await create_user(rt, "cli-queued")
            base = settings.resolved_public_base_url()
            async with httpx.AsyncClient(base_url=base) as client:
                held = await client.post(
                    "/v1/video/generations", headers=auth(other), json=generation_body(prompt="first")
                )
            assert held.json().get("operation_name"), held.text  # it took the one slot
            result = await anyio.to_thread.run_sync(
                lambda: run(
                    "generate", "A queued lion", "--wait", "--progress-every", "0", env=cli_env(key, base)
                )
            )
    assert result.returncode == 0, result.stderr
    lines = status_lines(result.stderr, result.stderr.split()[0])
    assert lines[0] == ("pending", "")
    assert lines[1][0] == "pending" and re.fullmatch(r"queued #1 · ~\d+ s", lines[1][1]), lines
    assert [status for status, _ in lines[2:]][:1] == ["processing"] and lines[-1][0] == "completed"
    running = [PERCENT.fullmatch(detail) for status, detail in lines if status == "processing"]
    assert running and all(running), lines
    assert len(set(lines)) == len(lines), lines  # nothing said twice


@pytest.mark.settings(
    tiers={"free": {"submits_per_minute": 1, "max_in_flight": 10}}, rate_limit_window_seconds=2
)
async def test_rate_limits_are_typed_and_retried_without_double_submits(service) -> None:
    key = await create_user(service, "limited", tier="free")
    base = service.settings.resolved_public_base_url()
    async with AsyncLunosClient(key, base_url=base, max_retries=0) as impatient:
        await impatient.video.generate("first")
        with pytest.raises(RateLimitError) as caught:
            await impatient.video.generate("second")
    assert caught.value.status == 429 and 1 <= caught.value.retry_after <= 2

    # With retries the client waits out Retry-After; its automatic Idempotency-Key means the
    # repeated submit can never create a second operation.
    async with AsyncLunosClient(key, base_url=base, max_retries=3) as patient:
        created = await patient.video.generate("third")
    async with service.store.reading() as conn:
        count = (
            await conn.execute(select(func.count()).where(Operation.account_id == "limited"))
        ).scalar_one()
    assert count == 2 and created.id.startswith("video-op:limited:")
