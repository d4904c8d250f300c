"""Provider capacity end to end: credential pools with quotas, the queue, failover, fairness and
restarts, against the real google-genai SDK and the fake Vertex AI endpoint's per-key quotas."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from lunos_events.runtime import Runtime
from lunos_events.services import accounts
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.store.models import Event, Operation
from tests.conftest import auth, create_user
from tests.fake_google import API_KEY, FakeGoogle, FakeGoogleServer, KeyQuota
from tests.helpers import generation_body, wait_for_status
from tests.processes import settings_env, spawn

pytestmark = pytest.mark.anyio

COST = 320  # generation_body's 8 seconds of veo-3.1


@asynccontextmanager
async def pooled_service(
    settings: Settings, fake: FakeGoogle, cap: int, *keys: str, worker: bool = True
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient, FakeGoogleServer]]:
    """The service (API, and worker unless told not) on `keys`, each capped at `cap`, against
    the fake Veo; with a client of its API."""
    with FakeGoogleServer(fake) as server:
        settings = pool_settings(settings, server, cap, *keys)
        async with (
            running_service(settings, worker=worker) as rt,
            httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
        ):
            yield rt, client, server


@pytest.fixture
def fake_google() -> Iterator[FakeGoogleServer]:
    with FakeGoogleServer(FakeGoogle(latency_seconds=0.4)) as server:
        yield server


def pool_settings(settings: Settings, server: FakeGoogleServer, cap: int, *keys: str) -> Settings:
    for key in keys:
        server.fake.keys[key] = KeyQuota(max_running=cap)
    credentials = [{"name": f"cred-{k}", "api_key": k, "max_in_flight": cap} for k in keys]
    return settings.model_copy(
        update={
            "provider": "google",
            "google_api_key": API_KEY,
            "google_base_url": server.url,
            "google_credentials": Settings(google_credentials=credentials).google_credentials,
            "google_start_attempts": 1,
            "capacity_cooldown_seconds": 0.2,
            "metrics_open": True,  # the tests read /metrics without a token
        }
    )


async def submit(client: httpx.AsyncClient, key: str, prompt: str, app: str | None = None) -> str:
    response = await client.post(
        "/v1/video/generations", headers=auth(key, app), json=generation_body(prompt=prompt)
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def operations(rt, ids: list[str]) -> dict[str, Operation]:
    found = {op_id: await rt.store.operation(op_id) for op_id in ids}
    return {op_id: op for op_id, op in found.items() if op is not None}


async def test_fifty_submits_on_two_capped_credentials_all_complete(settings, fake_google) -> None:
    settings = pool_settings(settings, fake_google, 5, "key-a", "key-b")
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "many", "1000.00")
        ids = [await submit(client, key, f"shot {i}") for i in range(50)]
        finals = [await wait_for_status(client, op_id, auth(key), timeout=90) for op_id in ids]
        assert Counter(f["status"] for f in finals) == {"completed": 50}
        quotas = fake_google.fake.keys
        # Never more than the cap running on a key, so Google never had to refuse one; both keys ran
        # several at once (how many depends on how fast the fake answers on a loaded machine).
        assert all(2 <= quotas[k].peak_running <= 5 for k in ("key-a", "key-b")), quotas
        assert quotas["key-a"].refused == quotas["key-b"].refused == 0
        # Each started once, on the credential recorded on it (which then polled it).
        assert len(fake_google.fake.operations) == 50
        used = Counter(op.provider_credential for op in (await operations(rt, ids)).values())
        assert set(used) == {"cred-key-a", "cred-key-b"}
        assert sum(used.values()) == 50


async def test_a_revoked_credential_leaves_the_work_to_the_other(settings, fake_google) -> None:
    settings = pool_settings(settings, fake_google, 3, "key-a", "key-b")
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "revoked", "1000.00")
        ids = [await submit(client, key, f"shot {i}") for i in range(20)]
        fake_google.fake.keys["key-a"].revoked = True
        finals = [await wait_for_status(client, op_id, auth(key), timeout=90) for op_id in ids]
        assert Counter(f["status"] for f in finals) == {"completed": 20}
        health = await rt.generations.starter.capacity.health()
        assert health["cred-key-a"][0] == "out"
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["provider"] == {"cred-key-a": "out", "cred-key-b": "ok"}
        metrics = (await client.get("/metrics")).text
        assert 'lunos_provider_credential_up{credential="cred-key-a"} 0.0' in metrics
        assert 'lunos_provider_starts_total{credential="cred-key-a",outcome="refused"}' in metrics


async def test_fairness_another_account_waits_at_most_one_turn(settings, fake_google) -> None:
    settings = pool_settings(settings, fake_google, 1, "key-a")
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        busy = await create_user(rt, "busy", "1000.00")  # both of the dev tier: equal weights
        quiet = await create_user(rt, "quiet", "100.00")
        many = [await submit(client, busy, f"busy {i}") for i in range(200)]
        one = await submit(client, quiet, "quiet one")
        await wait_for_status(client, one, auth(quiet), timeout=60)
        ops = await operations(rt, [*many, one])
        mine = ops[one]
        assert mine.started_at_ms is not None
        # Started after the quiet account's submit and before its one: at most one turn.
        ahead = [
            o
            for o in ops.values()
            if o.id != one and o.started_at_ms and mine.created_at_ms <= o.started_at_ms < mine.started_at_ms
        ]
        assert len(ahead) <= 1, [o.prompt for o in ahead]


async def test_a_start_turned_away_keeps_its_accounts_turn(settings, fake_google) -> None:
    """A 429 at the dispatcher's start puts the operation back in the queue without using up its
    account's turn: it is the next one started, not the other account's."""
    settings = pool_settings(settings, fake_google, 1, "key-a")
    fake_google.fake.latency_seconds = 3.0  # the first one runs while the others queue
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        first = await create_user(rt, "first", "100.00")
        second = await create_user(rt, "second", "100.00")
        running = await submit(client, first, "running")
        turned_away = await submit(client, first, "turned away")
        other = await submit(client, second, "the other account's")
        ops = await operations(rt, [running, turned_away, other])
        assert ops[running].provider_operation is not None and ops[turned_away].queued_at_ms is not None
        starts = len(fake_google.fake.start_requests)
        fake_google.fake.start_errors = [429]  # the dispatcher's next start request
        for op_id, key in ((turned_away, first), (other, second)):
            assert (await wait_for_status(client, op_id, auth(key), timeout=60))["status"] == "completed"
        assert len(fake_google.fake.start_requests) == starts + 3  # the 429, then the two starts
        ops = await operations(rt, [turned_away, other])
        assert ops[turned_away].started_at_ms < ops[other].started_at_ms  # type: ignore[operator]


WEIGHTED = {
    "heavy": {"submits_per_minute": 1000, "max_in_flight": 500, "queue_weight": 3},
    "light": {"submits_per_minute": 1000, "max_in_flight": 500, "queue_weight": 1},
}


@pytest.mark.settings(tiers=WEIGHTED)
async def test_fairness_tier_weights_give_three_starts_to_one(settings, fake_google) -> None:
    settings = pool_settings(settings, fake_google, 1, "key-a")
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        heavy = await create_user(rt, "heavy", "1000.00", tier="heavy")
        light = await create_user(rt, "light", "1000.00", tier="light")
        ids = [await submit(client, heavy, f"heavy {i}") for i in range(16)]
        ids += [await submit(client, light, f"light {i}") for i in range(4)]
        for op_id in ids[-4:]:
            await wait_for_status(client, op_id, auth(light), timeout=90)
        ops = sorted(
            (o for o in (await operations(rt, ids)).values() if o.started_at_ms),
            key=lambda o: o.started_at_ms or 0,
        )
        runs = "".join("H" if o.account_id == "heavy" else "l" for o in ops)
        # Between two of the light account's starts, the heavy one (deep queue) gets its 3.
        first, last = runs.index("l"), runs.rindex("l")
        assert runs[first : last + 1] == "lHHHlHHHlHHHl", runs


async def _forget_redis(redis_url: str, settings: Settings, account: str) -> None:
    """What a Redis restart leaves: nothing of this test's queue, jobs, limits or capacity."""
    redis = Redis.from_url(redis_url)
    try:
        for pattern in (f"{settings.redis_key_prefix}*", f"*{account}*", settings.queue_name):
            keys = [k async for k in redis.scan_iter(match=pattern, count=1000)]
            if keys:
                await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.mark.settings(job_timeout_seconds=1, start_grace_seconds=3)
async def test_queued_work_survives_worker_kill_and_redis_loss(settings, fake_google, redis_url) -> None:
    settings = pool_settings(settings, fake_google, 5, "key-a")
    async with running_service(settings, worker=False) as rt:
        key = await create_user(rt, "restarter", "1000.00")
        async with httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client:
            ids = [await submit(client, key, f"restart {i}") for i in range(100)]
            doomed = spawn("worker", env=settings_env(settings))
            with anyio.fail_after(60):
                while len(fake_google.fake.operations) < 15:
                    await anyio.sleep(0.05)
            doomed.kill()
            doomed.wait()
            doomed.stdout.close()
            await _forget_redis(redis_url, settings, "restarter")
            worker = spawn("worker", env=settings_env(settings))
            try:
                finals = [await wait_for_status(client, op_id, auth(key), timeout=120) for op_id in ids]
            finally:
                worker.terminate()
                worker.wait(30)
                worker.stdout.close()
        statuses = Counter(f["status"] for f in finals)
        assert set(statuses) <= {"completed", "failed"}
        # Started at most once each: no prompt reached Google twice.
        prompts = Counter(op.prompt for op in fake_google.fake.operations.values())
        assert max(prompts.values()) == 1
        # One final event each, and charged only for what completed.
        rows = await rt.store.all(
            select(Event.operation_id).where(Event.type.in_(["video.completed", "video.failed"]))
        )
        assert Counter(r[0] for r in rows if r[0] in ids) == dict.fromkeys(ids, 1)
        account = await accounts.get_account(rt.store, "restarter")
        assert account.balance_cents == 100_000 - COST * statuses["completed"]


async def test_a_start_deadline_fails_and_refunds_what_waited_too_long(settings, fake_google) -> None:
    settings = pool_settings(settings, fake_google, 1, "key-a")
    fake_google.fake.latency_seconds = 3.0
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "hurried", "10.00")
        first = await submit(client, key, "takes the only slot")
        body = generation_body(prompt="must start within a second")
        body["parameters"]["startDeadlineSeconds"] = 1
        response = await client.post("/v1/video/generations", headers=auth(key), json=body)
        assert response.status_code == 200, response.text
        final = await wait_for_status(client, response.json()["id"], auth(key), timeout=30)
        assert (final["status"], final["error_code"]) == ("failed", "deadline_exceeded")
        assert [op.prompt for op in fake_google.fake.operations.values()] == ["takes the only slot"]
        assert (await wait_for_status(client, first, auth(key), timeout=30))["status"] == "completed"
        assert (await accounts.get_account(rt.store, "hurried")).balance_cents == 1000 - COST


async def test_start_deadline_is_checked(client, service) -> None:
    key = await create_user(service, "strict")
    body = generation_body()
    body["parameters"]["startDeadlineSeconds"] = 0
    response = await client.post("/v1/video/generations", headers=auth(key), json=body)
    assert response.status_code == 400
    assert "startDeadlineSeconds" in response.json()["error"]


async def test_models_show_queue_depth_and_observed_times(settings, fake_google) -> None:
    settings = pool_settings(settings, fake_google, 1, "key-a")
    async with (
        running_service(settings, worker=False) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "lister", "100.00")
        for i in range(3):
            await submit(client, key, f"queued {i}")  # the first starts, two wait (no worker)
        models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
        queue = models["google/veo-3.1-generate-001"]["queue"]
        assert queue["depth"] == 2
        metrics = (await client.get("/metrics")).text
        assert 'lunos_provider_queue_depth{model="veo-3.1-generate-001"} 2.0' in metrics


async def test_a_queued_operation_past_its_deadline_fails_and_is_refunded(settings, fake_google) -> None:
    # The only credential is refused (taken out for minutes): nothing can start, and the deadline,
    # which counts from the submit, fails the queued operation (its watch job, not a poll).
    settings = pool_settings(settings, fake_google, 1, "key-a").model_copy(
        update={"operation_deadline_seconds": 2.0}
    )
    fake_google.fake.keys["key-a"].revoked = True
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "late", "10.00")
        queued = await submit(client, key, "waits past its deadline")
        assert (await client.get(f"/v1/video/generations/{queued}", headers=auth(key))).json()[
            "status"
        ] == "pending"
        final = await wait_for_status(client, queued, auth(key), timeout=30)
        assert (final["status"], final["error_code"]) == ("failed", "deadline_exceeded")
        assert "started_at" not in final  # it never started
        assert fake_google.fake.operations == {}
        assert (await accounts.get_account(rt.store, "late")).balance_cents == 1000
