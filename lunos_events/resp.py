"""A lean Redis connection for the two busiest Redis paths: an asyncio protocol parsed by hiredis.

redis-py's asyncio client runs tens of µs of Python for every reply it reads (`read_response`
under a timeout scope, per command) and for every pub/sub message (`PubSub.get_message`). Served,
that was a sixth of a submit's CPU: its two shared round trips, and the event hub receiving the
`video.pending` event it publishes. Here hiredis parses whatever arrives, in C, straight from
`data_received`, and each reply is handed to a plain callback.

Used by `redis_batches.py` (the submit's commands, pipelined) and the event hub's subscription.
Everything else keeps redis-py, whose connection settings this reads: a `Redis` client is passed
in for them (host and port or unix socket, TLS, username and password, database, timeouts).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, SSLConnection, UnixDomainSocketConnection
from redis.credentials import UsernamePasswordCredentialProvider
from redis.exceptions import AuthenticationWrongNumberOfArgsError, ConnectionError, InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

from lunos_events.redis_packing import pack

Reply = Any  # bytes, int, None, a list of replies, or the exception of an error reply


class RespConnection(asyncio.Protocol):
    """One connection: `send` writes packed commands, every reply goes to `on_reply`, in order."""

    def __init__(self) -> None:
        # Error replies come back as the exception redis-py would raise for them (not raised).
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
        self._transport: asyncio.Transport | None = None
        self.on_reply: Callable[[Reply], None] = _unexpected
        # Called once, at once, when the connection closes (whichever side closed it), with the reason.
        self.on_close: Callable[[Exception | None], None] = _ignore
        # Done, with the reason, once the connection is closed.
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                self.on_reply(reply)
        except Exception as error:
            # Not Redis speaking, or a reply nobody asked for: what follows cannot be trusted.
            self.close(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._closed(exc)

    def send(self, packed: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("the Redis connection is closed")
        self._transport.write(packed)

    def close(self, reason: Exception | None = None) -> None:
        self._closed(reason)
        if self._transport is not None:
            self._transport.close()

    def _closed(self, reason: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
            self.on_close(reason)

    async def call(self, *commands: Sequence[Any]) -> list[Reply]:
        """Send commands and wait for their replies, the connection otherwise idle (set-up only)."""
        future: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        replies: list[Reply] = []

        def collect(reply: Reply) -> None:
            replies.append(reply)
            if len(replies) == len(commands) and not future.done():
                future.set_result(replies)

        self.on_reply = collect
        self.send(b"".join(pack(command) for command in commands))
        waiting = asyncio.ensure_future(self.closed)
        try:
            await asyncio.wait((future, waiting), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.on_reply = _unexpected
        if not future.done():
            raise ConnectionError(f"Redis closed the connection: {waiting.result() or 'no reason given'}")
        failure = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if failure is not None:
            raise failure
        return replies


async def connect(client: Redis) -> RespConnection:
    """A new connection with `client`'s settings, authenticated and on its database.

    Raises redis-py's ConnectionError (or TimeoutError) when Redis cannot be reached in time.
    """
    # A connection object of the client's pool, never connected: it holds the settings, normalised.
    settings = client.connection_pool.make_connection()
    loop = asyncio.get_running_loop()
    conn: RespConnection | None = None
    try:
        async with asyncio.timeout(settings.socket_connect_timeout):
            if isinstance(settings, UnixDomainSocketConnection):
                _, conn = await loop.create_unix_connection(RespConnection, settings.path)
            else:
                ssl_context = settings.ssl_context.get() if isinstance(settings, SSLConnection) else None
                transport, conn = await loop.create_connection(
                    RespConnection, settings.host, settings.port, ssl=ssl_context
                )
                sock = transport.get_extra_info("socket")
                if sock is not None and settings.socket_keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            await _authenticate(conn, settings)
            if settings.db:
                await conn.call(("SELECT", settings.db))
    except BaseException as error:
        if conn is not None:
            conn.close()
        if isinstance(error, TimeoutError):
            raise RedisTimeoutError(
                f"no answer from Redis within {settings.socket_connect_timeout} s"
            ) from None
        if isinstance(error, OSError):
            raise ConnectionError(f"cannot connect to Redis: {error}") from error
        raise
    return conn


async def _authenticate(conn: RespConnection, settings: AbstractConnection) -> None:
    """AUTH exactly when redis-py would: with a credential provider, a username or a password."""
    if not (settings.credential_provider or settings.username or settings.password):
        return
    provider = settings.credential_provider or UsernamePasswordCredentialProvider(
        settings.username, settings.password
    )
    credentials = await provider.get_credentials_async()
    try:
        await conn.call(("AUTH", *credentials))
    except AuthenticationWrongNumberOfArgsError:
        # A Redis older than 6 takes the password alone (the username can only be "default").
        await conn.call(("AUTH", credentials[-1]))


def _ignore(reason: Exception | None) -> None:
    return None


def _unexpected(reply: Reply) -> None:
    raise InvalidResponse(f"a reply nobody asked for: {reply!r}")
