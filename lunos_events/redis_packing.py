"""Redis commands packed by hiredis (C) rather than by redis-py's asyncio connection (Python).

redis-py's asyncio client packs every command argument by argument in Python: ~9 µs for one call
of the limits script against ~2 µs with hiredis, and a submit packs several such commands. (Its
synchronous client already packs with hiredis when it is installed.) The bytes on the wire are the
same; an argument hiredis does not take (an enum, a bytearray, None) or would pack differently
(a memoryview, which may be strided) goes through redis-py's own packer, so what it accepts and
the errors it raises do not change. hiredis always encodes text as strict UTF-8, so pools set up
with another encoding keep redis-py's packer.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any

import hiredis
from redis._parsers.encoders import Encoder
from redis.asyncio.connection import AbstractConnection, ConnectionPool

# redis-py's own argument encoder: what it refuses (None, a bool, a dict) raises its DataError.
_ENCODER = Encoder(encoding="utf-8", encoding_errors="strict", decode_responses=False)


def pack(args: Sequence[Any]) -> bytes:
    """One command in the Redis protocol, packed by hiredis; a DataError for an argument redis-py
    would refuse."""
    # A command name written with its sub-command ("SCRIPT LOAD") goes as separate arguments.
    command = args[0]
    if isinstance(command, str) and " " in command:
        args = (*command.encode().split(), *args[1:])
    elif isinstance(command, bytes) and b" " in command:
        args = (*command.split(), *args[1:])
    try:
        return hiredis.pack_command(tuple(args))
    except TypeError:
        return hiredis.pack_command(
            tuple(bytes(a) if type(a) is memoryview else _ENCODER.encode(a) for a in args)
        )


class HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        if any(type(arg) is memoryview for arg in args):
            return super().pack_command(*args)
        return [pack(args)]


async def pack_with_hiredis(pool: ConnectionPool) -> None:
    """Make every connection of `pool` pack with hiredis: the ones it has are closed and dropped.

    Call it before the pool is shared (arq's `create_pool` leaves one connection from its PING).
    """
    encoding = codecs.lookup(pool.connection_kwargs.get("encoding", "utf-8")).name
    if encoding != "utf-8" or pool.connection_kwargs.get("encoding_errors", "strict") != "strict":
        return
    base = pool.connection_class
    pool.connection_class = type(f"Hiredis{base.__name__}", (HiredisPacking, base), {})
    await pool.disconnect()
    pool.reset()
