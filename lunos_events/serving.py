"""Running the processes: the API server, the worker, or both in one process (`dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn

from lunos_events.api.app import create_app
from lunos_events.http_limits import HttpLimits, bounded_protocol
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.settings import Settings
from lunos_events.worker.supervisor import SupervisedWorker

log = logging.getLogger(__name__)


class ApiServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: the process owner decides when to stop."""

    def __init__(self, config: uvicorn.Config, *, on_shutdown: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Event streams never end by themselves, and sse-starlette cannot see this server stop (it
        # watches uvicorn's signal handlers, which this server does not install): end them first,
        # so their responses finish cleanly instead of being cancelled after the grace period.
        if self._on_shutdown is not None:
            self._on_shutdown()
        await super().shutdown(sockets)


@contextlib.asynccontextmanager
async def running_api(settings: Settings, rt: Runtime | None = None) -> AsyncIterator[ApiServer]:
    app = create_app(settings, rt)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        http=bounded_protocol(HttpLimits.from_settings(settings)),
        timeout_keep_alive=settings.http_keep_alive_seconds,  # type: ignore[arg-type]  # a float works
    )
    server = ApiServer(config, on_shutdown=app.state.hub.close)
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
    supervised = SupervisedWorker(rt)
    task = asyncio.create_task(supervised.run())
    try:
        yield
    finally:
        await supervised.stop(task)


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


# Young collections at Python's default threshold (700 new objects) ran every ~20 submits under
# load, mostly walking the objects of requests still in flight and promoting them to the older
# generations, whose collections cost more; at 10,000 those objects die young.
YOUNG_COLLECTION_THRESHOLD = 10_000


async def until_stopped(stop: asyncio.Event) -> None:
    """Run until `stop` (see stop_signal), with garbage collection set up for a long-running server.

    What start-up built (modules, the app, its clients: ~160,000 tracked objects) lives as long as
    the process, yet every full collection walked it all again; frozen, it is left out. Start-up's
    garbage is collected first, so none of it is kept for good. Together with the threshold this
    took a submit's garbage collection from ~45 µs to ~10 µs of CPU under load (bench/README.md).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)
    await stop.wait()


def stop_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; install it first so a signal during start-up is not lost."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
