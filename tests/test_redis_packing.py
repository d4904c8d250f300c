"""The service's Redis pool packs commands with hiredis, byte for byte as redis-py would."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from lunos_events.redis_packing import HiredisPacking
from lunos_events.runtime import connect_redis
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


class Priority(IntEnum):
    HIGH = 3


COMMANDS = [
    ("SET", "packing:text", "héllo wörld"),
    ("EVAL", "return {KEYS[1], ARGV[1]}", 1, "packing:key", 1.5),
    ("ZADD", b"packing:zset", 1e20, b"\x00\xff member"),
    ("INCRBY", "packing:counter", 10**18),
    ("SCRIPT LOAD", "return 1"),  # a sub-command written into the command name
    (b"CONFIG GET", "maxmemory"),
    ("SET", "packing:view", memoryview(b"viewed")),
    ("SET", "packing:enum", Priority.HIGH),  # hiredis refuses it: redis-py's packer takes it
]


async def test_the_service_pool_packs_with_hiredis_as_redis_py_would(tmp_path: Path, redis_url: str) -> None:
    redis = await connect_redis(make_settings(tmp_path, redis_url))
    plain = Connection()
    try:
        connection = await redis.connection_pool.get_connection("PING")
        try:
            assert isinstance(connection, HiredisPacking)
            for args in COMMANDS:
                packed = b"".join(connection.pack_command(*args))
                assert packed == b"".join(bytes(chunk) for chunk in plain.pack_command(*args)), args
            for refused in (None, True, bytearray(b"x")):  # redis-py's error, not hiredis's TypeError
                with pytest.raises(DataError):
                    connection.pack_command("SET", "packing:refused", refused)
        finally:
            await redis.connection_pool.release(connection)

        assert await redis.eval("return {KEYS[1], ARGV[1]}", 1, "packing:key", "héllo") == [
            b"packing:key",
            "héllo".encode(),
        ]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set("packing:text", "héllo wörld").get("packing:text").config_get("maxmemory")
            stored, text, config = await pipe.execute()
        assert stored is True and text == "héllo wörld".encode() and "maxmemory" in config
    finally:
        await redis.aclose()
