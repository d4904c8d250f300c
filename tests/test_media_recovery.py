"""Media inputs live in storage, not in a process: a worker killed mid-job, then restarted as a new
process, renders from the same first frame and stores every sample once."""

from __future__ import annotations

import httpx
import pytest

from lunos_events.serving import running_service
from tests.conftest import auth, create_user
from tests.helpers import wait_for_status
from tests.media_support import difference, frames_rgb, image_data, picture, png
from tests.processes import settings_env, spawn
from tests.test_worker_recovery import wait_for_death

pytestmark = pytest.mark.anyio


@pytest.mark.settings(job_timeout_seconds=1)
async def test_a_restarted_worker_resumes_from_the_stored_inputs(settings) -> None:
    async with running_service(settings, worker=False) as rt:
        key = await create_user(rt, "resumer", "20.00")
        first = picture(hue=40)
        body = {
            "model": "google/veo-3.1-generate-001",
            "prompt": "a lantern",
            "parameters": {"image": image_data(png(first)), "sampleCount": 2, "durationSeconds": 4},
        }
        async with httpx.AsyncClient(base_url=settings.resolved_public_base_url()) as client:
            response = await client.post("/v1/video/generations", headers=auth(key), json=body)
            assert response.status_code == 200, response.text
            op_id = response.json()["id"]
            doomed = spawn("worker", env=settings_env(settings, LUNOS_FAULT_POINT="provider_done"))
            assert await wait_for_death(doomed) == -9
            doomed.stdout.close()

            restarted = spawn("worker", env=settings_env(settings))
            try:
                final = await wait_for_status(client, op_id, auth(key), timeout=60)
            finally:
                restarted.terminate()
                restarted.communicate(timeout=20)
            assert final["status"] == "completed", final
            assert len(final["video_urls"]) == 2
            for url in final["video_urls"]:
                frames = frames_rgb((await client.get(url)).content)
                assert difference(first, frames[0]) < 12
