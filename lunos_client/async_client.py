"""`AsyncLunosClient`: the asyncio/anyio client (httpx.AsyncClient), the same API awaited."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx

from lunos_client import calls
from lunos_client.calls import Call
from lunos_client.config import DEFAULT_BASE_URL, ClientConfig
from lunos_client.download import ProgressCallback, VideoFile, broken_download, video_url_of
from lunos_client.models import VideoEvent, VideoStatus
from lunos_client.streaming import TICK, StreamSession, Tick
from lunos_client.transport import AsyncTransport
from lunos_client.video_api import VideoAPI
from lunos_client.waiting import (
    DEFAULT_MAX_WAIT,
    DEFAULT_POLL_INTERVAL,
    STREAM_TROUBLE,
    StatusCallback,
    Waiter,
)


class AsyncVideoResource(VideoAPI):
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    def _send(self, call: Call[object]) -> Any:
        return self._transport.send(call)  # an awaitable

    async def stream_events(
        self, operation_id: str | None = None, last_event_id: int | None = None, *, app_id: str | None = None
    ) -> AsyncIterator[VideoEvent]:
        """Events of one operation (ends after its final status) or, with no id, of the whole account
        (or of `app_id`), forever. Reconnects after a disconnect and resumes after the last event.

        `video.progress` reports come in between the status changes while an operation is
        processing: transient events (`id` None), never replayed after a reconnect."""
        session = StreamSession(
            self._stream_call(operation_id, app_id),
            self._transport.policy,
            last_event_id=last_event_id,
            ends_on_final=operation_id is not None,
        )
        async for item in self._session_items(session):
            if not isinstance(item, Tick):
                yield item

    async def _session_items(self, session: StreamSession) -> AsyncGenerator[VideoEvent | Tick, None]:
        while True:
            response = await self._transport.open(session.next_call())
            failure: httpx.TransportError | None = None
            try:
                session.opened(response)
                async for line in response.aiter_lines():
                    item = session.feed(line)
                    if item is not None:
                        yield item
                    if session.finished:
                        return
            except httpx.TransportError as exc:
                failure = exc
            finally:
                await response.aclose()
            if session.finished:
                return
            delay = session.reconnect_delay(failure)
            yield TICK
            await anyio.sleep(delay)

    async def generate_and_wait(
        self,
        prompt: str,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_wait: float = DEFAULT_MAX_WAIT,
        use_events: bool = True,
        on_status: StatusCallback | None = None,
        on_progress: StatusCallback | None = None,
        **options: Any,
    ) -> VideoStatus:
        """Submit, then wait for the final status (see `LunosClient.video.generate_and_wait`)."""
        created = await self.generate_video(prompt, **options)
        return await self.wait(
            created,
            poll_interval=poll_interval,
            max_wait=max_wait,
            use_events=use_events,
            on_status=on_status,
            on_progress=on_progress,
        )

    async def wait(
        self,
        operation: VideoStatus,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_wait: float = DEFAULT_MAX_WAIT,
        use_events: bool = True,
        on_status: StatusCallback | None = None,
        on_progress: StatusCallback | None = None,
    ) -> VideoStatus:
        """Wait for an operation already submitted: over its event stream, else by polling."""
        waiter = Waiter(
            operation.id,
            poll_interval=poll_interval,
            max_wait=max_wait,
            on_status=on_status,
            on_progress=on_progress,
        )
        if (final := waiter.observe(operation)) is not None:
            return final
        if use_events and operation.events_url:
            if waiter.wants_progress and (final := waiter.observe(await self.get_video_status(operation.id))):
                return final  # events carry no queue place: one poll tells it (and may tell the end)
            session = waiter.stream_session(operation.events_url, self._transport.policy)
            items = self._session_items(session)
            try:
                async for item in items:
                    waiter.check_deadline()
                    if isinstance(item, VideoEvent) and (final := waiter.observe(item.status)):
                        return final
            except STREAM_TROUBLE:
                pass  # the stream is unusable here (blocked, expired, unreachable): poll instead
            finally:
                await items.aclose()
        while True:
            if (final := waiter.observe(await self.get_video_status(operation.id))) is not None:
                return final
            await anyio.sleep(waiter.poll_delay())

    async def download(
        self,
        operation: str | VideoStatus,
        path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Save a completed operation's video to `path` (written whole or not at all)."""
        status = operation if isinstance(operation, VideoStatus) else await self.get_video_status(operation)
        response = await self._transport.open(calls.fetch(video_url_of(status)))
        target = VideoFile(path, progress)
        try:
            target.start(response)
            async for chunk in response.aiter_bytes():
                target.write(chunk)
        except httpx.TransportError as exc:
            target.discard()
            raise broken_download(exc) from exc
        except BaseException:
            target.discard()
            raise
        finally:
            await response.aclose()
        return target.commit()


class AsyncLunosClient:
    """The async client: `async with AsyncLunosClient(api_key=...) as client: await client.video.…`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        app_id: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        config: ClientConfig | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config or ClientConfig(
            api_key=api_key or "", base_url=base_url, app_id=app_id, timeout=timeout, max_retries=max_retries
        )
        self._transport = AsyncTransport(self.config, http_client)
        self.video = AsyncVideoResource(self._transport)

    async def aclose(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncLunosClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
