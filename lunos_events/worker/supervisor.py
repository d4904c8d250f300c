"""Keeps the arq worker running through Redis outages.

arq's worker loop ends with an exception when Redis goes away. Here it is rebuilt with backoff
once Redis answers again; its start-up then re-queues tracking for every pending operation from
the database (Redis may come back empty), so no operation is left without a tracker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from arq import Worker
from redis.exceptions import RedisError

from lunos_events.bus.redis_bus import connect_redis
from lunos_events.runtime import Runtime
from lunos_events.worker.app import build_worker

log = logging.getLogger(__name__)

RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 10.0


class SupervisedWorker:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.worker: Worker | None = None
        self.restarts = 0
        self._stopping = False

    async def run(self) -> None:
        delay = RESTART_FIRST_DELAY
        while not self._stopping:
            try:
                self.worker = build_worker(self.rt, await connect_redis(self.rt.settings))
                await self.worker.async_run()
                return
            except (RedisError, OSError) as exc:
                if self._stopping:
                    return
                log.warning("worker lost Redis (%s); restarting in %.1f s", exc, delay)
            await self._dispose()
            self.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)

    async def stop(self, task: asyncio.Task[None]) -> None:
        self._stopping = True
        if self.worker is not None:
            # arq's close() cancels running jobs and gathers them without return_exceptions, so a
            # job still running would raise CancelledError out of close(): stop the loop first.
            self.worker.handle_sig(signal.SIGUSR1)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self._dispose()

    async def _dispose(self) -> None:
        worker, self.worker = self.worker, None
        if worker is None:
            return
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        worker.tasks.clear()
        with contextlib.suppress(RedisError, OSError):
            await worker.close()
