"""Running the processes: the API server, the worker, or both in one process (`dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

import uvicorn
from arq.worker import Worker

from lunos_events.api.app import create_app
from lunos_events.runtime import Runtime, connect_redis, open_runtime
from lunos_events.settings import Settings
from lunos_events.worker.app import build_worker

log = logging.getLogger(__name__)


class ApiServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: the process owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


@contextlib.asynccontextmanager
async def running_api(settings: Settings, rt: Runtime | None = None) -> AsyncIterator[ApiServer]:
    config = uvicorn.Config(
        create_app(settings, rt),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = ApiServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raises why the server could not start (e.g. port in use)
            raise RuntimeError("the API server stopped during start-up")
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_worker(rt: Runtime) -> AsyncIterator[None]:
    worker = build_worker(rt, await connect_redis(rt.settings))
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        await close_worker(worker)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def close_worker(worker: Worker) -> None:
    try:
        await worker.close()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        # arq's close() gathers the jobs it has just cancelled, so a job still running at shutdown
        # re-raises its cancellation here and skips the rest of close(): finish it.
        worker.tasks.clear()
        await worker.close()


@contextlib.asynccontextmanager
async def running_processes(rt: Runtime, *, api: bool = True, worker: bool = True) -> AsyncIterator[None]:
    """Run the worker and/or the API server on a shared Runtime; stops them cleanly on exit."""
    async with contextlib.AsyncExitStack() as stack:
        if worker:
            await stack.enter_async_context(running_worker(rt))
        if api:
            await stack.enter_async_context(running_api(rt.settings, rt))
        yield


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings, *, api: bool = True, worker: bool = True
) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as rt, running_processes(rt, api=api, worker=worker):
        yield rt


def stop_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; install it first so a signal during start-up is not lost."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
