"""The service's Redis pool packs commands with hiredis, byte for byte as redis-py would."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import hiredis
import pytest
from hiredis import pack_command
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import DataError

from lunos_events.redis_packing import HiredisPacking, pack_with_hiredis
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
    ("SET", "packing:view", memoryview(b"viewed")),  # redis-py's packer takes it (may be strided)
    ("SET", "packing:enum", Priority.HIGH),  # hiredis refuses it: redis-py's packer takes it
]
PACKED_BY_HIREDIS = 6  # the commands above without a memoryview or an enum


async def test_the_service_pool_packs_with_hiredis_as_redis_py_would(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed_by_hiredis = []

    def spied(args: tuple) -> bytes:
        packed_by_hiredis.append(args)
        return pack_command(args)

    monkeypatch.setattr(hiredis, "pack_command", spied)
    redis = await connect_redis(make_settings(tmp_path, redis_url))
    plain = Connection()
    try:
        connection = await redis.connection_pool.get_connection("PING")
        try:
            assert isinstance(connection, HiredisPacking)
            packed_by_hiredis.clear()
            for args in COMMANDS:
                packed = b"".join(bytes(chunk) for chunk in connection.pack_command(*args))
                assert packed == b"".join(bytes(chunk) for chunk in plain.pack_command(*args)), args
            # The enum was tried first, then packed once redis-py's encoder had made bytes of it.
            assert len(packed_by_hiredis) == PACKED_BY_HIREDIS + 2
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
            pipe.set("packing:text", "héllo wörld").get("packing:text").object("encoding", "packing:text")
            stored, text, encoding = await pipe.execute()
        assert stored is True and text == "héllo wörld".encode() and encoding
    finally:
        await redis.aclose()


async def test_a_pool_with_another_text_encoding_keeps_redis_py_packing() -> None:
    pool = ConnectionPool(encoding="latin-1")
    await pack_with_hiredis(pool)
    assert pool.connection_class is Connection
    assert b"\xe9" in b"".join(pool.make_connection().pack_command("SET", "k", "é"))
