"""Pipelined Redis commands: every caller gets its own replies and errors, however they share the wire."""

from __future__ import annotations

import anyio
import pytest
from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, DataError, ResponseError

from lunos_events.redis_batches import RedisBatches
from tests.conftest import free_port
from tests.tcp_proxy import cuttable_proxy

pytestmark = pytest.mark.anyio


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    await client.delete("batches:counter", "batches:text", "batches:scores")
    yield client
    await client.aclose()


async def test_concurrent_callers_share_writes_and_get_their_own_replies(redis: Redis) -> None:
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
    assert batches.writes < 100  # callers queued in the same loop pass went out together
    # One caller alone still goes out at once.
    before = batches.writes
    assert await batches.execute(lambda pipe: pipe.get("batches:counter")) == [b"5050"]
    assert batches.writes == before + 1
    # Replies go through redis-py's parsing, with the command's options.
    await redis.zadd("batches:scores", {"a": 1.5})
    assert await batches.execute(lambda pipe: pipe.zrange("batches:scores", 0, -1, withscores=True)) == [
        [(b"a", 1.5)]
    ]
    await batches.aclose()


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
    with anyio.CancelScope() as scope:
        scope.cancel()  # cancelled before the loop pass in which its command would have gone out
        await batches.execute(lambda pipe: pipe.incr("batches:counter"))
    async with anyio.create_task_group() as tg:
        # A caller cancelled while its command is on the wire: the reply still comes, to nobody.
        tg.start_soon(batches.execute, lambda pipe: pipe.blpop("batches:never", timeout=0.3))
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    # The first command never went out, and the next caller gets its own reply, not the BLPOP's.
    assert await batches.execute(lambda pipe: pipe.incr("batches:counter")) == [1]
    await batches.aclose()


async def test_a_lost_connection_fails_the_callers_owed_replies_and_the_next_caller_reconnects(
    redis: Redis,
) -> None:
    batches = RedisBatches(redis)
    await batches.execute(lambda pipe: pipe.client_setname("batches-under-test"))
    results: list[object] = []

    async def waiting() -> None:
        try:
            results.append(await batches.execute(lambda pipe: pipe.blpop("batches:never", timeout=5)))
        except ConnectionError as error:
            results.append(error)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            await anyio.sleep(0.1)
            # Redis drops the connection while a reply is owed.
            clients = await redis.client_list()
            (mine,) = [c for c in clients if c["name"] == "batches-under-test"]
            await redis.client_kill_filter(_id=mine["id"])
    assert len(results) == 1 and isinstance(results[0], ConnectionError)
    assert await batches.execute(lambda pipe: pipe.incr("batches:counter")) == [1]
    await batches.aclose()


async def test_a_password_and_a_database_from_the_settings_are_used(redis: Redis, redis_url: str) -> None:
    await redis.acl_setuser(
        "batches-user", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"]
    )
    base = redis_url.rsplit("/", 1)[0].replace("redis://", "redis://batches-user:s3cret@", 1)
    client = Redis.from_url(f"{base}/3")
    batches = RedisBatches(client)
    try:
        assert await batches.execute(lambda pipe: pipe.set("batches:where", "db 3")) == [True]
        assert await client.get("batches:where") == b"db 3"
        assert await redis.get("batches:where") is None  # not in the default database
        await client.delete("batches:where")
        wrong = RedisBatches(Redis.from_url(base.replace("s3cret", "wrong") + "/3"))
        with pytest.raises(ConnectionError):  # redis-py's AuthenticationError is one
            await wrong.execute(lambda pipe: pipe.ping())
    finally:
        await batches.aclose()
        await redis.acl_deluser("batches-user")
        await client.aclose()


async def test_a_silent_connection_owing_replies_is_dropped(redis_url: str) -> None:
    async with cuttable_proxy(redis_url.replace("redis://", "http://", 1)) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        client = Redis.from_url(f"redis://{host}:{port}/0")
        batches = RedisBatches(client, reply_timeout=0.5)
        assert await batches.execute(lambda pipe: pipe.ping()) == [True]
        proxy.silence()  # the connection stays open and nothing comes back: a half-open path
        with anyio.fail_after(5), pytest.raises(ConnectionError, match="no reply from Redis"):
            await batches.execute(lambda pipe: pipe.ping())
        await batches.aclose()
        with pytest.raises(ConnectionError):  # closed for good: no new connection is made
            await batches.execute(lambda pipe: pipe.ping())
        await client.aclose()


async def test_the_service_pool_settings_work_with_an_empty_password(redis_url: str) -> None:
    # A templated URL whose password variable is empty: redis-py sends no AUTH, so neither may this.
    base = redis_url.replace("redis://", "redis://:@", 1)
    pool = await create_pool(RedisSettings.from_dsn(base))
    batches = RedisBatches(pool)
    try:
        assert await batches.execute(lambda pipe: pipe.ping()) == [True]
    finally:
        await batches.aclose()
        await pool.aclose()
