"""A worker killed with SIGKILL mid-job, then restarted, completes the operation exactly once."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sqlalchemy import select

from lunos_events.services import accounts
from lunos_events.serving import running_service
from lunos_events.store.models import Event, Operation
from tests.conftest import auth, create_user
from tests.helpers import generation_body, probe_mp4, wait_for_status
from tests.processes import settings_env, spawn

pytestmark = pytest.mark.anyio


async def wait_for_death(process, timeout: float = 30) -> int:
    with anyio.fail_after(timeout):
        while process.poll() is None:
            await anyio.sleep(0.05)
    return process.returncode


@pytest.mark.settings(job_timeout_seconds=1, webhook_timeout_seconds=0.5)
@pytest.mark.parametrize("point", ["provider_done", "stored", "committed"])
async def test_killed_worker_completes_once_after_restart(settings, point: str) -> None:
    # The API runs here; workers run as separate processes so they can really be SIGKILLed.
    async with running_service(settings, worker=False) as rt:
        key = await create_user(rt, "survivor", "10.00")
        async with httpx.AsyncClient(base_url=settings.resolved_public_base_url()) as client:
            op_id = (
                await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
            ).json()["id"]

            doomed = spawn("worker", env=settings_env(settings, LUNOS_FAULT_POINT=point))
            assert await wait_for_death(doomed) == -9
            doomed.stdout.close()

            async with rt.store.reading() as conn:
                status = (
                    await conn.execute(select(Operation.status).where(Operation.id == op_id))
                ).scalar_one()
            assert status == ("completed" if point == "committed" else "processing")

            restarted = spawn("worker", env=settings_env(settings))
            try:
                final = await wait_for_status(client, op_id, auth(key), timeout=60)
                assert final["status"] == "completed"
                video = await client.get(final["video_url"])
                assert probe_mp4(video.content)["codec"] == "h264"
                # The completion event is published even when the first worker died before publishing.
                with anyio.fail_after(30):
                    while True:
                        async with rt.store.reading() as conn:
                            events = (
                                await conn.execute(
                                    select(Event.type, Event.published_at_ms).where(
                                        Event.operation_id == op_id
                                    )
                                )
                            ).all()
                        if all(e.published_at_ms for e in events):
                            break
                        await anyio.sleep(0.2)
            finally:
                restarted.terminate()
                restarted.communicate(timeout=20)

        assert [e.type for e in events] == ["video.pending", "video.processing", "video.completed"]
        assert (await accounts.get_account(rt.store, "survivor")).balance_cents == 1000 - 320
