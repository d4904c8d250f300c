"""The submit's Redis commands, pipelined on one connection of their own (`resp.py`).

A submit makes two Redis calls (take its limits; then confirm its slot, publish its event and
queue its tracking). Through redis-py's pool each call would be a round trip of its own, ~100 µs
of CPU. Here the commands queued in one pass of the event loop are written together, without
waiting for the replies to earlier ones (Redis answers in order), and hiredis parses the replies
as they arrive; each caller gets back the replies to its own commands. Blocking commands (BLPOP
and the like) do not belong here: they would hold up every caller behind them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import CoreCommands
from redis.exceptions import ConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lunos_events import resp
from lunos_events.redis_packing import pack

_Command = tuple[tuple[Any, ...], dict[str, Any]]  # arguments, and options for the reply's parsing


class Commands(CoreCommands):  # type: ignore[misc]
    """Collects commands through redis-py's command methods (`eval`, `publish`, ...)."""

    def __init__(self) -> None:
        self.stack: list[_Command] = []

    def execute_command(self, *args: Any, **options: Any) -> None:
        self.stack.append((args, options))


# What the functions that add commands for a caller write to: these, or a redis-py pipeline.
RedisCommands = Commands | Pipeline
QueueCommands = Callable[[Commands], object]


class _Call:
    """One caller's commands on the wire, and the replies to them that have arrived."""

    __slots__ = ("commands", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], commands: list[_Command]) -> None:
        self.future = future
        self.commands = commands
        self.replies: list[Any] = []


# A connection that owes replies and stays silent for this long (up to twice as long) is dropped: its
# callers get an error (a 503 for a submit) instead of waiting on a half-open connection for as long
# as TCP takes to notice.
REPLY_TIMEOUT_SECONDS = 10.0


class RedisBatches:
    def __init__(self, redis: Redis, reply_timeout: float = REPLY_TIMEOUT_SECONDS) -> None:
        self._redis = redis
        self._reply_timeout = reply_timeout
        self._callbacks = redis.response_callbacks
        self._queued: list[tuple[QueueCommands, asyncio.Future[list[Any]]]] = []
        self._sent: deque[_Call] = deque()  # in the order their replies will come
        self._flush: asyncio.Handle | None = None
        self._conn: resp.RespConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._heard = False  # a reply came since the reply check last looked
        self._reply_check: asyncio.TimerHandle | None = None
        self._closed = False
        self.writes = 0  # how many times queued commands went out together

    async def execute(self, queue: QueueCommands) -> list[Any]:
        """Send the commands `queue(commands)` adds (not as a transaction); returns their replies,
        as redis-py would return them.

        Raises the first error among them (as a redis-py pipeline would), or the connection's own
        error (Redis unreachable, the connection lost before every reply came).
        """
        if self._closed:
            raise ConnectionError("the Redis connection was closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queued.append((queue, future))
        if self._flush is None:
            # After the callbacks already due in this pass, so that theirs go out together.
            self._flush = loop.call_soon(self._send_queued)
        return await future

    async def aclose(self) -> None:
        self._closed = True
        for pending in (self._flush, self._reply_check, self._connecting):
            if pending is not None:
                pending.cancel()
        if self._conn is not None:
            self._conn.close()
        self._fail_queued(ConnectionError("the Redis connection was closed"))

    def _send_queued(self) -> None:
        self._flush = None
        conn = self._conn
        if not self._queued:
            return
        if conn is None:
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            return
        batch, self._queued = self._queued, []
        packed: list[bytes] = []
        for queue, future in batch:
            if future.done():  # its caller was cancelled before its commands went out
                continue
            commands = Commands()
            try:
                queue(commands)
                mine = [pack(args) for args, _ in commands.stack]
            except Exception as error:  # a bad argument: that caller alone fails
                future.set_exception(error)
                continue
            if not mine:
                future.set_result([])
                continue
            packed += mine
            self._sent.append(_Call(future, commands.stack))
        if not packed:
            return
        self.writes += 1
        if self._reply_check is None:  # the silence counts from now
            self._heard = False
            self._reply_check = asyncio.get_running_loop().call_later(
                self._reply_timeout, self._check_replies
            )
        try:
            conn.send(b"".join(packed))
        except ConnectionError as error:  # closed, and told us so only now
            conn.close(error)

    def _check_replies(self) -> None:
        """Drop a connection that owes replies and has been silent since the last check."""
        self._reply_check = None
        if self._conn is None or not self._sent:
            return  # nothing owed: the next write starts the clock again
        if not self._heard:
            self._conn.close(RedisTimeoutError(f"no reply from Redis for {self._reply_timeout:g} s"))
            return
        self._heard = False
        self._reply_check = asyncio.get_running_loop().call_later(self._reply_timeout, self._check_replies)

    def _on_reply(self, reply: Any) -> None:
        self._heard = True
        call = self._sent[0]
        args, options = call.commands[len(call.replies)]
        callback = self._callbacks.get(args[0])
        if callback is not None and not isinstance(reply, Exception):
            options.pop("keys", None)  # for redis-py's client-side cache only
            try:
                reply = callback(reply, **options)
            except Exception as error:
                reply = error
        call.replies.append(reply)
        if len(call.replies) < len(call.commands):
            return
        self._sent.popleft()
        if call.future.done():  # its caller was cancelled
            return
        failure = next((r for r in call.replies if isinstance(r, Exception)), None)
        if failure is not None:
            call.future.set_exception(failure)
        else:
            call.future.set_result(call.replies)

    async def _connect(self) -> None:
        try:
            conn = await resp.connect(self._redis)
        except Exception as error:
            # Whoever is waiting gets the error now (a 503 for a submit); the next caller tries again.
            self._fail_queued(error)
            return
        finally:
            self._connecting = None
        if self._closed or conn.closed.done():  # shut down meanwhile, or closed by Redis already
            conn.close()
            self._fail_queued(ConnectionError("the Redis connection was closed"))
            return
        conn.on_reply = self._on_reply
        conn.on_close = lambda reason: self._lost(conn, reason)
        self._conn = conn
        if self._queued and self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._send_queued)

    def _fail_queued(self, error: BaseException) -> None:
        failed, self._queued = self._queued, []
        for _, future in failed:
            if not future.done():
                future.set_exception(error)

    def _lost(self, conn: resp.RespConnection, reason: Exception | None) -> None:
        """The connection closed: its callers still owed replies fail; the next one reconnects."""
        if self._conn is conn:
            self._conn = None
        error = ConnectionError(f"lost the Redis connection: {reason or 'closed by the server'}")
        while self._sent:
            call = self._sent.popleft()
            if not call.future.done():
                call.future.set_exception(error)
