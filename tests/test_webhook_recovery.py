"""No webhook is lost when the worker is SIGKILLed: not before the delivery was queued, not
mid-delivery. The receiver gets the message (again, with the same webhook-id) after a restart."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from lunos_events.serving import running_service
from lunos_events.store.webhook_models import WebhookDelivery
from tests.conftest import auth, create_user
from tests.helpers import generation_body, wait_for_status
from tests.processes import settings_env, spawn
from tests.test_worker_recovery import wait_for_death
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.anyio


@pytest.mark.settings(job_timeout_seconds=1, webhook_timeout_seconds=1, webhook_allow_private=True)
@pytest.mark.parametrize("point", ["committed", "webhook_sent"])
async def test_killed_worker_delivers_after_restart(settings, point: str) -> None:
    async with running_service(settings, worker=False) as rt, running_receiver() as receiver:
        key = await create_user(rt, "durable")
        async with httpx.AsyncClient(base_url=settings.resolved_public_base_url()) as client:
            endpoint = (
                await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})
            ).json()
            op_id = (
                await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
            ).json()["id"]

            doomed = spawn("worker", env=settings_env(settings, LUNOS_FAULT_POINT=point))
            assert await wait_for_death(doomed) == -9
            doomed.stdout.close()
            assert len(receiver.received) == (1 if point == "webhook_sent" else 0)

            restarted = spawn("worker", env=settings_env(settings))
            try:
                assert (await wait_for_status(client, op_id, auth(key), timeout=60))["status"] == "completed"
                with anyio.fail_after(60):
                    while True:
                        async with rt.store.reading() as conn:
                            delivery = (
                                await conn.execute(
                                    select(WebhookDelivery).where(
                                        WebhookDelivery.endpoint_id == endpoint["id"]
                                    )
                                )
                            ).one()
                        if delivery.status == "delivered":
                            break
                        await anyio.sleep(0.2)
            finally:
                restarted.terminate()
                restarted.communicate(timeout=20)

    messages = receiver.received
    assert len(messages) == (2 if point == "webhook_sent" else 1)
    assert {m.headers["webhook-id"] for m in messages} == {delivery.id}
    for message in messages:
        assert Webhook(endpoint["secret"]).verify(message.body, message.headers)["type"] == "video.completed"
