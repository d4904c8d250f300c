"""Shared Redis round trips for the request hot path (a group commit for Redis commands).

redis-py's asyncio client spends ~100 µs of CPU on every round trip (a pooled connection checked
out, a lock, a timeout scope, a send and a receive) against ~10 µs to pack and parse one command,
and a submit makes two round trips. Here, commands queued while one batch is on the wire go out
together as the next pipeline, and each caller gets back the replies to its own commands, in order.
With one caller at a time this is a plain pipeline; under load, many submits share one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import DataError

QueueCommands = Callable[[Pipeline], object]


class RedisBatches:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._waiting: list[tuple[QueueCommands, asyncio.Future[list[Any]]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.round_trips = 0

    async def execute(self, queue: QueueCommands) -> list[Any]:
        """Send the commands `queue(pipe)` adds (not as a transaction); returns their replies.

        Raises the first error among them (as `pipe.execute()` would), or the round trip's own
        error (Redis unreachable, a timeout), which every caller of that batch gets.
        """
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((queue, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_batches())
        return await future

    async def _send_batches(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._sender = None
            left, self._waiting = self._waiting, []  # only when this task was cancelled (shutdown)
            for _, future in left:
                future.cancel()

    async def _send(self, batch: list[tuple[QueueCommands, asyncio.Future[list[Any]]]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        spans: list[tuple[asyncio.Future[list[Any]], int, int]] = []
        for queue, future in batch:
            if future.done():  # its caller was cancelled before the commands went out
                continue
            start = len(pipe.command_stack)
            try:
                queue(pipe)
            except Exception as error:  # a bad argument: that caller alone fails
                del pipe.command_stack[start:]
                future.set_exception(error)
                continue
            spans.append((future, start, len(pipe.command_stack)))
        if not spans:
            return
        self.round_trips += 1
        try:
            replies = await pipe.execute(raise_on_error=False)
        except DataError as error:
            if len(spans) == 1:
                _fail(spans, error)
                return
            # An argument Redis cannot take shows when the pipeline is packed, before anything is
            # sent: each caller goes again on its own, so that only the culprit fails.
            for entry in batch:
                if not entry[1].done():
                    await self._send([entry])
            return
        except Exception as error:
            _fail(spans, error)
            return
        except BaseException:  # cancelled (shutdown): so are its callers
            for future, _, _ in spans:
                future.cancel()
            raise
        finally:
            await pipe.reset()
        for future, start, end in spans:
            if future.done():  # its caller was cancelled
                continue
            mine = replies[start:end]
            failure = next((reply for reply in mine if isinstance(reply, Exception)), None)
            if failure is not None:
                future.set_exception(failure)
            else:
                future.set_result(mine)


def _fail(spans: list[tuple[asyncio.Future[list[Any]], int, int]], error: Exception) -> None:
    for future, _, _ in spans:
        if not future.done():
            future.set_exception(error)
