"""Per-credential limits per upstream model (the catalog's `[upstreams."…"]`), on top of the
credential's own: the Lua script's two counts against a real Redis, reconcile after a Redis wipe,
and end to end against the fake Vertex AI endpoint's per-key quotas."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from lunos_events.bus.capacity import Candidate, CapacityScripts
from lunos_events.serving import running_service
from lunos_events.worker.app import reconcile_operations
from tests.conftest import auth, create_user
from tests.fake_google import FakeGoogle, FakeGoogleServer
from tests.helpers import wait_for_status
from tests.test_provider_capacity import pool_settings, submit

pytestmark = pytest.mark.anyio

VEO, FAST = "veo-3.1-generate-001", "veo-3.1-fast-generate-001"


@pytest.fixture
def fake_google() -> Iterator[FakeGoogleServer]:
    with FakeGoogleServer(FakeGoogle(latency_seconds=0.4)) as server:
        yield server


@pytest.fixture
async def scripts(redis_url):
    redis = Redis.from_url(redis_url)
    try:
        yield CapacityScripts(redis, f"lunos:test:{uuid.uuid4().hex[:8]}")
    finally:
        await redis.aclose()


def later() -> int:
    return int(time.time() * 1000) + 60_000


async def test_a_start_goes_where_its_model_runs_least(scripts) -> None:
    """Google's quotas are per base model: of two credentials with room, the one running fewer of
    the model takes the start, even if it runs more in all; a tie goes to the less busy."""
    a, b = Candidate("a", 0, 0), Candidate("b", 0, 0)
    for member in ("f1", "f2"):
        assert await scripts.take(FAST, [a], member, later()) == "a"
    assert await scripts.take(VEO, [b], "v1", later()) == "b"
    assert await scripts.take(VEO, [a, b], "v2", later()) == "a"  # b runs a VEO, a none (of 3 in all)
    assert await scripts.take(FAST, [a, b], "f3", later()) == "b"  # a runs two FAST
    assert await scripts.take(VEO, [a, b], "v3", later()) == "b"  # 1 VEO each: b runs 2 in all, a 3


async def test_a_models_in_flight_limit_holds_beside_the_credentials(scripts) -> None:
    # The credential takes 3 operations in all, of which 2 of VEO.
    cred = [Candidate("c", max_in_flight=3, starts_per_minute=0, model_max_in_flight=2)]
    assert await scripts.take(VEO, cred, "v1", later()) == "c"
    assert await scripts.take(VEO, cred, "v2", later()) == "c"
    assert await scripts.take(VEO, cred, "v3", later()) is None  # the model's limit
    assert await scripts.take(FAST, cred, "f1", later()) == "c"  # another model's count is its own
    assert await scripts.take(FAST, cred, "f2", later()) is None  # the credential's limit
    # A release names the credential only; the model's count follows it.
    await scripts.release(["c"], "v1")
    assert await scripts.take(VEO, cred, "v3", later()) == "c"
    assert await scripts.take(VEO, cred, "v4", later()) is None


async def test_a_models_starts_per_minute_counts_starts_not_releases(scripts) -> None:
    cred = [Candidate("c", max_in_flight=0, starts_per_minute=0, model_starts_per_minute=2)]
    for member in ("a", "b"):
        assert await scripts.take(VEO, cred, member, later()) == "c"
        await scripts.release(["c"], member)
    assert await scripts.take(VEO, cred, "c3", later()) is None
    assert await scripts.take(FAST, cred, "f1", later()) == "c"


async def test_the_least_busy_credential_with_room_for_the_model_is_taken(scripts) -> None:
    pool = [
        Candidate("a", max_in_flight=0, starts_per_minute=0, model_max_in_flight=1),
        Candidate("b", max_in_flight=0, starts_per_minute=0, model_max_in_flight=1),
    ]
    assert await scripts.take(VEO, pool, "1", later()) == "a"
    assert await scripts.take(VEO, pool, "2", later()) == "b"
    assert await scripts.take(VEO, pool, "3", later()) is None


def upstream_catalog(tmp_path, **limits: int):
    path = tmp_path / "capacity.toml"
    fields = "\n".join(f"{k} = {v}" for k, v in limits.items())
    path.write_text(f'extends_default = true\n\n[upstreams."{VEO}"]\n{fields}\n')
    return path


async def test_the_catalogs_limit_holds_where_tighter_and_is_reported(
    settings, fake_google, tmp_path
) -> None:
    # The settings allow 4 running on the key; the catalog allows 1 of veo-3.1 per credential.
    settings = pool_settings(settings, fake_google, 4, "key-a").model_copy(
        update={"catalog": upstream_catalog(tmp_path, max_in_flight=1, starts_per_minute=600)}
    )
    async with (
        running_service(settings) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "modelcap", "1000.00")
        ids = [await submit(client, key, f"one at a time {i}") for i in range(4)]
        finals = [await wait_for_status(client, op_id, auth(key), timeout=60) for op_id in ids]
        assert {f["status"] for f in finals} == {"completed"}
        assert fake_google.fake.keys["key-a"].peak_running == 1
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["provider"] == {"cred-key-a": "ok"}
        assert ready["provider_capacity"]["cred-key-a"]["models"] == {
            VEO: {"starts_per_minute": 600, "max_in_flight": 1},  # the tighter of 4 and 1
            FAST: {"starts_per_minute": None, "max_in_flight": 4},  # the settings' alone
        }
        metrics = (await client.get("/metrics")).text
        limit = 'lunos_provider_limit{credential="cred-key-a",limit="max_in_flight",model="%s"} %s'
        assert limit % (VEO, "1.0") in metrics
        assert limit % (FAST, "4.0") in metrics
        assert f'limit="starts_per_minute",model="{FAST}"' not in metrics  # unlimited: absent


async def test_reconcile_restores_the_models_count_after_a_redis_wipe(
    settings, fake_google: FakeGoogleServer, tmp_path, redis_url
) -> None:
    fake_google.fake.latency_seconds = 30.0  # what starts stays running for the test
    settings = pool_settings(settings, fake_google, 4, "key-a").model_copy(
        update={"catalog": upstream_catalog(tmp_path, max_in_flight=1)}
    )
    async with (
        running_service(settings, worker=False) as rt,
        httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "wiped", "1000.00")
        await submit(client, key, "running")
        assert len(fake_google.fake.operations) == 1
        capacity = rt.generations.starter.capacity
        assert await capacity.take("probe", VEO, later(), behind_queue=False) is None
        redis = Redis.from_url(redis_url)
        try:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}:capacity:*")]
            await redis.delete(*keys)
        finally:
            await redis.aclose()
        await reconcile_operations({"rt": rt})
        # Only the model's count is full (the credential has 3 more): it was restored too.
        assert await capacity.take("probe", VEO, later(), behind_queue=False) is None
        assert await capacity.take("probe", FAST, later(), behind_queue=False) == "cred-key-a"
