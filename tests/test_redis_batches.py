"""Shared Redis round trips: every caller gets its own replies and errors, however batches form."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, DataError, ResponseError

from lunos_events.redis_batches import RedisBatches
from tests.conftest import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    await client.delete("batches:counter", "batches:text")
    yield client
    await client.aclose()


async def test_concurrent_callers_share_round_trips_and_get_their_own_replies(redis: Redis) -> None:
    batches = RedisBatches(redis)
    replies: dict[int, list] = {}

    async def call(n: int) -> None:
        replies[n] = await batches.execute(
            lambda pipe: (pipe.incrby("batches:counter", n), pipe.echo(f"caller {n}"))
        )

    async with anyio.create_task_group() as tg:
        for n in range(1, 101):
            tg.start_soon(call, n)
    assert all(replies[n][1] == f"caller {n}".encode() for n in replies)
    # Each caller's INCRBY saw a running total that includes its own increment exactly once.
    totals = sorted(replies[n][0] for n in replies)
    assert totals[-1] == sum(range(1, 101)) == int(await redis.get("batches:counter"))
    assert len(set(totals)) == 100
    assert batches.round_trips < 100  # callers waiting at the same time went out together
    # One caller alone still makes one round trip of its own.
    before = batches.round_trips
    assert await batches.execute(lambda pipe: pipe.get("batches:counter")) == [b"5050"]
    assert batches.round_trips == before + 1


async def test_an_error_fails_its_own_caller_only(redis: Redis) -> None:
    batches = RedisBatches(redis)
    await redis.set("batches:text", "not a number")

    async def bad() -> list:
        return await batches.execute(lambda pipe: (pipe.incr("batches:counter"), pipe.incr("batches:text")))

    async def good() -> list:
        return await batches.execute(lambda pipe: pipe.incr("batches:counter"))

    async def broken_arguments() -> list:
        return await batches.execute(lambda pipe: pipe.incrby("batches:counter", object()))

    results: dict[str, object] = {}

    async def keep(name: str, fn) -> None:
        try:
            results[name] = await fn()
        except Exception as error:
            results[name] = error

    async with anyio.create_task_group() as tg:
        tg.start_soon(keep, "bad", bad)
        tg.start_soon(keep, "good", good)
        tg.start_soon(keep, "broken", broken_arguments)
    assert isinstance(results["bad"], ResponseError)
    assert isinstance(results["broken"], DataError)
    assert isinstance(results["good"], list)
    # The failing caller's first command ran (no transaction); the broken one sent nothing.
    assert int(await redis.get("batches:counter")) == 2


async def test_an_unreachable_redis_fails_every_caller_of_the_batch() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    batches = RedisBatches(client)
    failures: list[BaseException] = []

    async def call() -> None:
        try:
            await batches.execute(lambda pipe: pipe.ping())
        except ConnectionError as error:
            failures.append(error)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
    assert len(failures) == 5
    await client.aclose()


async def test_a_cancelled_caller_does_not_disturb_the_others(redis: Redis) -> None:
    batches = RedisBatches(redis)
    async with anyio.create_task_group() as tg:
        # The first caller's batch stays on the wire for a while; the second queues behind it.
        tg.start_soon(batches.execute, lambda pipe: pipe.blpop("batches:never", timeout=0.3))
        await anyio.sleep(0.05)
        tg.start_soon(batches.execute, lambda pipe: pipe.incr("batches:counter"))
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    # The cancelled second caller's command never went out, and the next callers are served.
    assert await batches.execute(lambda pipe: pipe.incr("batches:counter")) == [1]
