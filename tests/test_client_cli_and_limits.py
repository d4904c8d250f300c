"""The `generate` command against a live server, and the client meeting real tier limits (429)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, select

from lunos_client import AsyncLunosClient, RateLimitError
from lunos_events.store.models import Operation
from tests.conftest import create_user
from tests.helpers import probe_mp4
from tests.processes import run

pytestmark = pytest.mark.anyio


async def test_generate_command_waits_and_downloads(service, tmp_path: Path) -> None:
    key = await create_user(service, "cli-user")
    out = tmp_path / "lion.mp4"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")}
    env |= {"LUNOS_API_KEY": key, "LUNOS_BASE_URL": service.settings.resolved_public_base_url()}
    # Blocking child process: run it off the event loop that serves its requests.
    result = await anyio.to_thread.run_sync(
        lambda: run("generate", "A lion in the savannah", "--out", str(out), "--app-id", "cli", env=env)
    )
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout + result.stderr
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
