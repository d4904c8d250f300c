"""Webhooks end to end: real submits, the real worker, real HTTP deliveries to a loopback receiver,
every signature checked with the `standardwebhooks` library (not with our own code)."""

from __future__ import annotations

import json
import time

import anyio
import httpx
import jsonschema
import pytest
import yaml
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from lunos_events.services import webhook_fanout as fanout
from lunos_events.store.webhook_models import WebhookDelivery, WebhookEndpoint
from tests.conftest import auth, create_user
from tests.helpers import generation_body, status_without_link, submit_generation, wait_for_status
from tests.processes import PROJECT_ROOT
from tests.webhook_receiver import running_receiver

pytestmark = pytest.mark.anyio


def payload_schema_validator() -> jsonschema.Draft202012Validator:
    spec = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text())
    schema = {"$ref": "#/components/schemas/WebhookPayload", "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema)


FAST_RETRIES = pytest.mark.settings(webhook_allow_private=True, webhook_retry_schedule="200ms,200ms,200ms")


async def stored_pending_deliveries(rt, account_id: str) -> int:
    """How many deliveries of `video.pending` events the account has stored, sent or not."""
    query = select(func.count()).where(
        WebhookDelivery.account_id == account_id, WebhookDelivery.event_type == "video.pending"
    )
    async with rt.store.reading() as conn:
        return (await conn.execute(query)).scalar()


async def wait_for_delivery(client, delivery_id: str, headers, status: str, timeout: float = 30) -> dict:
    with anyio.fail_after(timeout):
        while True:
            body = (await client.get(f"/v1/webhooks/deliveries/{delivery_id}", headers=headers)).json()
            if body["status"] == status:
                return body
            await anyio.sleep(0.05)


@FAST_RETRIES
async def test_submit_with_webhook_delivers_one_verified_completion(
    service, client: httpx.AsyncClient
) -> None:
    key = await create_user(service, "hooked")
    secret = (await client.get("/v1/webhooks/default/secret", headers=auth(key))).json()["secret"]
    assert secret.startswith("whsec_")
    async with running_receiver() as receiver:
        submitted = await client.post(
            "/v1/video/generations", headers=auth(key), json=generation_body(webhook=receiver.url)
        )
        assert submitted.status_code == 200, submitted.text
        op_id = submitted.json()["id"]
        final = await wait_for_status(client, op_id, auth(key))
        [message] = await receiver.wait_for(1)
        await anyio.sleep(0.5)  # nothing else (no video.pending: terminal events by default)
        assert len(receiver.received) == 1

    payload = Webhook(secret).verify(message.body, message.headers)
    assert payload["type"] == "video.completed"
    payload_schema_validator().validate(payload)  # the payload openapi.yaml documents
    assert payload["data"] == status_without_link(final)
    assert payload["timestamp"].endswith("Z")
    assert message.headers["content-type"] == "application/json"
    assert abs(int(message.headers["webhook-timestamp"]) - time.time()) < 60
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(message.body.replace(b"completed", b"failed"), message.headers)
    old = dict(message.headers, **{"webhook-timestamp": str(int(time.time()) - 3600)})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(message.body, old)

    log = await wait_for_delivery(client, message.headers["webhook-id"], auth(key), "delivered")
    assert log["endpoint_id"] is None and log["event_type"] == "video.completed"
    assert [a["status_code"] for a in log["attempt_log"]] == [200]


@FAST_RETRIES
async def test_a_request_webhook_that_asks_for_pending_gets_it(service, client) -> None:
    key = await create_user(service, "every-step")
    async with running_receiver() as receiver:
        body = generation_body(
            webhook=receiver.url, webhook_events_filter=["video.pending", "video.completed"]
        )
        submitted = await client.post("/v1/video/generations", headers=auth(key), json=body)
        assert submitted.status_code == 200, submitted.text
        await wait_for_status(client, submitted.json()["id"], auth(key))
        messages = list(await receiver.wait_for(2))

    types = [json.loads(m.body)["type"] for m in messages]
    assert sorted(types) == ["video.completed", "video.pending"]
    assert {json.loads(m.body)["data"]["id"] for m in messages} == {submitted.json()["id"]}


@FAST_RETRIES
async def test_failing_receiver_gets_the_same_message_until_it_answers(service, client) -> None:
    key = await create_user(service, "flaky")
    async with running_receiver() as receiver:
        receiver.script = [(500, {}), (500, {})]
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        op_id = (
            await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
        ).json()["id"]
        await wait_for_status(client, op_id, auth(key))
        messages = await receiver.wait_for(3)

    ids = {m.headers["webhook-id"] for m in messages}
    assert len(ids) == 1
    bodies = {m.body for m in messages}
    assert len(bodies) == 1
    for message in messages:
        assert Webhook(endpoint["secret"]).verify(message.body, message.headers)["type"] == "video.completed"

    deliveries = (await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=auth(key))).json()[
        "data"
    ]
    assert [d["id"] for d in deliveries] == list(ids)
    log = await wait_for_delivery(client, deliveries[0]["id"], auth(key), "delivered")
    assert [a["status_code"] for a in log["attempt_log"]] == [500, 500, 200]
    assert log["attempt_log"][0]["response_body"] == "status 500"
    assert all(a["latency_ms"] >= 0 for a in log["attempt_log"])


@pytest.mark.settings(webhook_allow_private=True, webhook_retry_schedule="200ms")
async def test_retries_run_out_then_redeliver_sends_the_same_message(service, client) -> None:
    key = await create_user(service, "gives-up")
    async with running_receiver() as receiver:
        receiver.script = [(502, {}), (302, {"location": "http://example.com/"})]
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        test = await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))
        assert test.status_code == 202
        delivery_id = test.json()["id"]
        failed = await wait_for_delivery(client, delivery_id, auth(key), "failed")
        assert [a["status_code"] for a in failed["attempt_log"]] == [502, 302]

        again = await client.post(f"/v1/webhooks/deliveries/{delivery_id}/redeliver", headers=auth(key))
        assert again.status_code == 202
        delivered = await wait_for_delivery(client, delivery_id, auth(key), "delivered")
        assert [a["status_code"] for a in delivered["attempt_log"]] == [502, 302, 200]
        assert {m.headers["webhook-id"] for m in receiver.received} == {delivery_id}
        payload = Webhook(endpoint["secret"]).verify(
            receiver.received[-1].body, receiver.received[-1].headers
        )
        assert payload["type"] == "webhook.test"
        assert payload["data"]["endpoint_id"] == endpoint["id"]


@pytest.mark.settings(webhook_allow_private=True, webhook_retry_schedule="1h")
async def test_retry_after_is_honoured_and_410_disables_the_endpoint(service, client) -> None:
    key = await create_user(service, "polite")
    async with running_receiver() as receiver:
        # The first message is a submit's `video.pending`, taken well. Then the schedule says wait
        # an hour; the receiver's Retry-After says one second.
        receiver.script = [(200, {}), (503, {"retry-after": "1"}), (410, {})]
        endpoint = (
            await client.post(
                "/v1/webhooks", headers=auth(key), json={"url": receiver.url, "events": ["video.pending"]}
            )
        ).json()
        await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
        await receiver.wait_for(1)
        delivery_id = (await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))).json()[
            "id"
        ]
        log = await wait_for_delivery(client, delivery_id, auth(key), "failed", timeout=20)
        gap = log["attempt_log"][1]["attempted_at_ms"] - log["attempt_log"][0]["attempted_at_ms"]
        assert 900 <= gap < 10_000
        assert [a["status_code"] for a in log["attempt_log"]] == [503, 410]

        current = (await client.get(f"/v1/webhooks/{endpoint['id']}", headers=auth(key))).json()
        assert current["enabled"] is False
        assert "410" in current["disabled_reason"]
        # A disabled endpoint receives nothing more, though its endpoints were read for an event
        # stored before it was disabled.
        op_id = (
            await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
        ).json()["id"]
        await wait_for_status(client, op_id, auth(key))
        await anyio.sleep(0.5)
        assert len(receiver.received) == 3
        assert await stored_pending_deliveries(service, "polite") == 1  # none was even stored for it
        refused = await client.post(f"/v1/webhooks/deliveries/{delivery_id}/redeliver", headers=auth(key))
        assert refused.status_code == 409


@pytest.mark.settings(
    webhook_allow_private=True,
    webhook_retry_schedule="200ms,200ms,200ms,200ms",
    webhook_disable_after_seconds=0.5,
)
async def test_endpoint_failing_continuously_is_disabled(service, client) -> None:
    key = await create_user(service, "broken")
    async with running_receiver() as receiver:
        receiver.script = [(500, {})] * 10
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        delivery_id = (await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))).json()[
            "id"
        ]
        log = await wait_for_delivery(client, delivery_id, auth(key), "failed")
    assert 2 <= len(log["attempt_log"]) <= 4
    current = (await client.get(f"/v1/webhooks/{endpoint['id']}", headers=auth(key))).json()
    assert current["enabled"] is False and "failing" in current["disabled_reason"]
    enabled = await client.patch(f"/v1/webhooks/{endpoint['id']}", headers=auth(key), json={"enabled": True})
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None


@pytest.mark.settings(webhook_allow_private=True, webhook_rotation_overlap_seconds=3600)
async def test_rotation_signs_with_old_and_new_secret_during_overlap(service, client) -> None:
    key = await create_user(service, "rotator")
    async with running_receiver() as receiver:
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        rotated = await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret", headers=auth(key))
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret != endpoint["secret"]
        assert rotated.json()["previous_secret_expires_at_ms"] > time.time() * 1000 + 3500_000
        await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))
        [message] = await receiver.wait_for(1)
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new_secret):
        assert Webhook(secret).verify(message.body, message.headers)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(message.body, message.headers)


@pytest.mark.settings(webhook_allow_private=True, webhook_rotation_overlap_seconds=0)
async def test_rotation_without_overlap_stops_the_old_secret(service, client) -> None:
    key = await create_user(service, "rotator2")
    async with running_receiver() as receiver:
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        new_secret = (
            await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret", headers=auth(key))
        ).json()["secret"]
        await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))
        [message] = await receiver.wait_for(1)
    assert Webhook(new_secret).verify(message.body, message.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(message.body, message.headers)


@pytest.mark.settings(webhook_allow_private=True)
async def test_endpoints_get_only_their_account_app_and_event_types(service, client) -> None:
    alice, bob = await create_user(service, "alice"), await create_user(service, "bob")
    async with (
        running_receiver("/a") as app_a,
        running_receiver("/all") as every,
        running_receiver("/b") as bobs,
    ):
        await client.post(
            "/v1/webhooks",
            headers=auth(alice),
            json={"url": app_a.url, "app_id": "app-a", "events": ["video.pending"]},
        )
        await client.post(
            "/v1/webhooks",
            headers=auth(alice),
            json={"url": every.url, "events": ["video.pending", "video.completed", "video.failed"]},
        )
        await client.post("/v1/webhooks", headers=auth(bob), json={"url": bobs.url})
        for app in ("app-a", "app-b"):
            op_id = (
                await client.post("/v1/video/generations", headers=auth(alice, app), json=generation_body())
            ).json()["id"]
            await wait_for_status(client, op_id, auth(alice))
        await every.wait_for(4)
        await app_a.wait_for(1)
        await anyio.sleep(0.5)
    assert (
        sorted(json.loads(m.body)["type"] for m in every.received)
        == ["video.completed"] * 2 + ["video.pending"] * 2
    )
    assert [json.loads(m.body)["type"] for m in app_a.received] == ["video.pending"]
    assert bobs.received == []


async def test_loopback_and_private_targets_are_refused_by_default(service, client) -> None:
    key = await create_user(service, "careful")
    for url in (
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
    ):
        endpoint = await client.post("/v1/webhooks", headers=auth(key), json={"url": url})
        assert endpoint.status_code == 400, url
        error = endpoint.json()["error"]
        assert "not allowed" in error
        # The refusal says nothing of what the name resolved to (no probing of internal names).
        assert not any(leak in error for leak in ("127.", "::1", "10.1", "169.254", "224.")), error
        submit = await client.post(
            "/v1/video/generations", headers=auth(key), json=generation_body(webhook=url)
        )
        assert submit.status_code == 400, url
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://example.com"):
        assert (await client.post("/v1/webhooks", headers=auth(key), json={"url": url})).status_code == 400
    # Nothing was charged for the refused submits.
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == "100.00"


@pytest.mark.settings(webhook_retry_schedule="1h,1h")
async def test_a_target_refused_at_send_time_fails_at_once(service, client) -> None:
    key = await create_user(service, "moved-inside")
    # Registered while its address was public; by send time it points inside (as a name whose DNS
    # record changed would).
    endpoint = (
        await client.post("/v1/webhooks", headers=auth(key), json={"url": "http://93.184.216.34/hook"})
    ).json()
    async with service.store.transaction() as conn:
        await conn.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint["id"])
            .values(url="http://127.0.0.1:9/hook")
        )
    test = await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))
    assert test.status_code == 202
    failed = await wait_for_delivery(client, test.json()["id"], auth(key), "failed", timeout=10)
    [attempt] = failed["attempt_log"]
    assert attempt["status_code"] is None and "not allowed" in attempt["error"]
    assert "127.0.0.1" not in attempt["error"]


@pytest.mark.settings(webhook_allow_private=True)
async def test_endpoint_crud_and_bad_input(service, client) -> None:
    key, other = await create_user(service, "crud"), await create_user(service, "other")
    created = await client.post(
        "/v1/webhooks",
        headers=auth(key),
        json={"url": "http://127.0.0.1:9/x", "events": ["video.failed"], "description": "ops"},
    )
    assert created.status_code == 201
    endpoint = created.json()
    assert endpoint["id"].startswith("ep_") and endpoint["secret"].startswith("whsec_")
    assert endpoint["events"] == ["video.failed"] and endpoint["enabled"] is True

    listed = (await client.get("/v1/webhooks", headers=auth(key))).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]
    fetched = (await client.get(f"/v1/webhooks/{endpoint['id']}", headers=auth(key))).json()
    assert "secret" not in fetched and fetched["description"] == "ops"

    patched = await client.patch(
        f"/v1/webhooks/{endpoint['id']}",
        headers=auth(key),
        json={"url": "http://127.0.0.1:10/y", "events": ["video.completed"], "enabled": False},
    )
    assert patched.status_code == 200
    assert (patched.json()["url"], patched.json()["events"], patched.json()["enabled"]) == (
        "http://127.0.0.1:10/y",
        ["video.completed"],
        False,
    )

    # Another account sees nothing of it.
    for method, path in (
        ("GET", f"/v1/webhooks/{endpoint['id']}"),
        ("PATCH", f"/v1/webhooks/{endpoint['id']}"),
        ("DELETE", f"/v1/webhooks/{endpoint['id']}"),
        ("POST", f"/v1/webhooks/{endpoint['id']}/rotate-secret"),
        ("GET", f"/v1/webhooks/{endpoint['id']}/deliveries"),
        ("GET", "/v1/webhooks/deliveries/msg_nope"),
        ("POST", "/v1/webhooks/deliveries/msg_nope/redeliver"),
    ):
        response = await client.request(
            method, path, headers=auth(other), json={} if method == "PATCH" else None
        )
        assert response.status_code == 404, (method, path)
        assert "error" in response.json()
    assert (await client.get("/v1/webhooks", headers=auth(other))).json()["data"] == []

    bad_bodies = [
        {},
        {"url": 5},
        {"url": "not a url"},
        {"url": "http://127.0.0.1/x", "events": ["video.exploded"]},
        {"url": "http://127.0.0.1/x", "events": []},
        {"url": "http://127.0.0.1/x", "events": "video.completed"},
        {"url": "http://127.0.0.1/x", "description": 7},
        {"url": "http://user:pw@127.0.0.1/x"},
    ]
    for body in bad_bodies:
        response = await client.post("/v1/webhooks", headers=auth(key), json=body)
        assert response.status_code == 400, body
        assert "error" in response.json()
    assert (await client.post("/v1/webhooks", headers=auth(key), content=b"[")).status_code == 400
    assert (
        await client.patch(f"/v1/webhooks/{endpoint['id']}", headers=auth(key), json={"enabled": "yes"})
    ).status_code == 400
    assert (
        await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries?limit=0", headers=auth(key))
    ).status_code == 400
    assert (await client.get("/v1/webhooks")).status_code == 401
    bad_submit = await client.post(
        "/v1/video/generations",
        headers=auth(key),
        json=generation_body(webhook_events_filter=["video.completed"]),
    )
    assert bad_submit.status_code == 400

    assert (await client.delete(f"/v1/webhooks/{endpoint['id']}", headers=auth(key))).status_code == 204
    assert (await client.get(f"/v1/webhooks/{endpoint['id']}", headers=auth(key))).status_code == 404
    assert (await client.delete(f"/v1/webhooks/{endpoint['id']}", headers=auth(key))).status_code == 404


@pytest.mark.settings(webhook_allow_private=True, webhook_timeout_seconds=0.5, webhook_retry_schedule="100ms")
async def test_slow_receiver_times_out_and_is_retried(service, client) -> None:
    key = await create_user(service, "patient")
    async with running_receiver() as receiver:
        receiver.stalls = [3.0]
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        delivery_id = (await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))).json()[
            "id"
        ]
        log = await wait_for_delivery(client, delivery_id, auth(key), "delivered")
    first, second = log["attempt_log"]
    assert first["status_code"] is None and "timed out" in first["error"]
    assert 400 <= first["latency_ms"] < 2000
    assert second["status_code"] == 200


@pytest.mark.settings(webhook_allow_private=True)
async def test_a_stored_delivery_whose_job_was_lost_is_still_sent(service, client) -> None:
    """The delivery row is the truth: one with no queued job (Redis flushed, a crash before the
    enqueue) is picked up by the worker's relay and sent."""
    from lunos_events.ids import now_ms
    from lunos_events.services.webhook_fanout import delivery_row, webhook_payload

    key = await create_user(service, "orphan")
    async with running_receiver() as receiver:
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        stamp = now_ms() - 10_000
        row = delivery_row(
            account_id="orphan",
            endpoint_id=endpoint["id"],
            url=receiver.url,
            event_seq=None,
            event_type="webhook.test",
            payload=webhook_payload("webhook.test", stamp, json.dumps({"endpoint_id": endpoint["id"]})),
            created_at_ms=stamp,
        )
        async with service.store.transaction() as conn:
            await conn.execute(WebhookDelivery.__table__.insert().values(**row))
        [message] = await receiver.wait_for(1, timeout=20)
    assert message.headers["webhook-id"] == row["id"]
    assert Webhook(endpoint["secret"]).verify(message.body, message.headers)["type"] == "webhook.test"
    await wait_for_delivery(client, row["id"], auth(key), "delivered")


@pytest.mark.settings(webhook_allow_private=True)
async def test_a_burst_is_sent_once_each_by_concurrent_drains(service, client) -> None:
    """First attempts go out through coalesced drain jobs that lease deliveries: a burst spread over
    several drains reaches the receiver exactly once per message."""
    key = await create_user(service, "bursty")
    async with running_receiver() as receiver:
        endpoint = (await client.post("/v1/webhooks", headers=auth(key), json={"url": receiver.url})).json()
        sent = []
        for _ in range(40):
            sent.append(
                (await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))).json()["id"]
            )
            await anyio.sleep(0.01)  # spans several 200 ms drain windows
        await receiver.wait_for(40)
        await anyio.sleep(1.0)
    assert sorted(m.headers["webhook-id"] for m in receiver.received) == sorted(sent)
    for delivery_id in sent[:3]:
        log = await wait_for_delivery(client, delivery_id, auth(key), "delivered")
        assert len(log["attempt_log"]) == 1


@pytest.mark.settings(webhook_allow_private=True)
async def test_every_endpoint_change_applies_to_the_next_event(service, client) -> None:
    """Storing an event reuses the endpoints it last read until the account's endpoints change:
    each kind of change must show in the deliveries of the very next submit."""
    key = await create_user(service, "changer")

    async def deliveries_of_a_submit() -> int:
        before = await stored_pending_deliveries(service, "changer")
        await submit_generation(client, key)
        return await stored_pending_deliveries(service, "changer") - before

    async def change(method: str, path: str, body: dict | None = None) -> None:
        response = await client.request(method, path, headers=auth(key), json=body)
        assert response.status_code < 300, response.text

    assert await deliveries_of_a_submit() == 0
    created = await client.post(
        "/v1/webhooks", headers=auth(key), json={"url": "http://127.0.0.1:9/a", "events": ["video.pending"]}
    )
    endpoint = f"/v1/webhooks/{created.json()['id']}"
    assert await deliveries_of_a_submit() == 1
    await change("PATCH", endpoint, {"events": ["video.completed"]})
    assert await deliveries_of_a_submit() == 0
    await change("PATCH", endpoint, {"events": ["video.pending"], "app_id": "other-app"})
    assert await deliveries_of_a_submit() == 0
    await change("PATCH", endpoint, {"app_id": None})
    assert await deliveries_of_a_submit() == 1
    await change("PATCH", endpoint, {"enabled": False})
    assert await deliveries_of_a_submit() == 0
    await change("PATCH", endpoint, {"enabled": True})
    assert await deliveries_of_a_submit() == 1
    await change("DELETE", endpoint)
    assert await deliveries_of_a_submit() == 0


@pytest.mark.settings(webhook_allow_private=True)
async def test_endpoints_are_reused_for_a_while_at_most(service, client, monkeypatch) -> None:
    """A change that came without its version bump (an older release mid-upgrade) is seen once the
    endpoints read last are too old to reuse."""
    key = await create_user(service, "unbumped")
    created = await client.post(
        "/v1/webhooks", headers=auth(key), json={"url": "http://127.0.0.1:9/u", "events": ["video.pending"]}
    )

    async def submit_and_count() -> int:
        await submit_generation(client, key)
        return await stored_pending_deliveries(service, "unbumped")

    assert await submit_and_count() == 1
    async with service.store.transaction() as conn:
        await conn.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == created.json()["id"]).values(enabled=False)
        )
    assert await submit_and_count() == 2  # reused: nothing told this writer of the change
    monkeypatch.setattr(fanout, "ENDPOINTS_REUSE_SECONDS", 0.0)
    assert await submit_and_count() == 2  # read again: the endpoint is disabled
