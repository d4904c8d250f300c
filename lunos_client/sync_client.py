"""`LunosClient`: the blocking client (httpx.Client)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from lunos_client import calls
from lunos_client.calls import Call
from lunos_client.config import DEFAULT_BASE_URL, ClientConfig
from lunos_client.download import ProgressCallback, VideoFile, broken_download, video_url_of
from lunos_client.models import VideoEvent, VideoStatus
from lunos_client.streaming import TICK, StreamSession, Tick
from lunos_client.transport import SyncTransport
from lunos_client.video_api import VideoAPI
from lunos_client.waiting import (
    DEFAULT_MAX_WAIT,
    DEFAULT_POLL_INTERVAL,
    STREAM_TROUBLE,
    StatusCallback,
    Waiter,
)


class VideoResource(VideoAPI):
    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def _send(self, call: Call[object]) -> Any:
        return self._transport.send(call)

    def stream_events(
        self, operation_id: str | None = None, last_event_id: int | None = None, *, app_id: str | None = None
    ) -> Iterator[VideoEvent]:
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
        for item in self._session_items(session):
            if not isinstance(item, Tick):
                yield item

    def _session_items(self, session: StreamSession) -> Iterator[VideoEvent | Tick]:
        while True:
            response = self._transport.open(session.next_call())
            failure: httpx.TransportError | None = None
            try:
                session.opened(response)
                for line in response.iter_lines():
                    item = session.feed(line)
                    if item is not None:
                        yield item
                    if session.finished:
                        return
            except httpx.TransportError as exc:
                failure = exc
            finally:
                response.close()
            if session.finished:
                return
            delay = session.reconnect_delay(failure)
            yield TICK
            time.sleep(delay)

    def generate_and_wait(
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
        """Submit, then wait for the final status: live over the operation's event stream when the
        server offers one, else (or once the stream fails) by polling every `poll_interval` seconds.
        Returns the completed status; raises GenerationFailedError or WaitTimeoutError.

        `on_status` gets each new status (pending, processing, the final one); `on_progress` each
        new estimate: a processing status with a new `progress`/`eta_seconds`, a queued one with
        its `queue_position` (asking for it costs one poll before the stream is followed)."""
        created = self.generate_video(prompt, **options)
        return self.wait(
            created,
            poll_interval=poll_interval,
            max_wait=max_wait,
            use_events=use_events,
            on_status=on_status,
            on_progress=on_progress,
        )

    def wait(
        self,
        operation: VideoStatus,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_wait: float = DEFAULT_MAX_WAIT,
        use_events: bool = True,
        on_status: StatusCallback | None = None,
        on_progress: StatusCallback | None = None,
    ) -> VideoStatus:
        """Wait for an operation already submitted (see `generate_and_wait`)."""
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
            if waiter.wants_progress and (final := waiter.observe(self.get_video_status(operation.id))):
                return final  # events carry no queue place: one poll tells it (and may tell the end)
            session = waiter.stream_session(operation.events_url, self._transport.policy)
            try:
                for item in self._session_items(session):
                    waiter.check_deadline()
                    if isinstance(item, VideoEvent) and (final := waiter.observe(item.status)):
                        return final
            except STREAM_TROUBLE:
                pass  # the stream is unusable here (blocked, expired, unreachable): poll instead
        while True:
            if (final := waiter.observe(self.get_video_status(operation.id))) is not None:
                return final
            time.sleep(waiter.poll_delay())

    def download(
        self,
        operation: str | VideoStatus,
        path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> Path:
        """Save a completed operation's video to `path` (written whole or not at all)."""
        status = operation if isinstance(operation, VideoStatus) else self.get_video_status(operation)
        response = self._transport.open(calls.fetch(video_url_of(status)))
        target = VideoFile(path, progress)
        try:
            target.start(response)
            for chunk in response.iter_bytes():
                target.write(chunk)
        except httpx.TransportError as exc:
            target.discard()
            raise broken_download(exc) from exc
        except BaseException:
            target.discard()
            raise
        finally:
            response.close()
        return target.commit()


class LunosClient:
    """The blocking client: `LunosClient(api_key=..., base_url=..., app_id=...)`, then `client.video.…`.

    Use it as a context manager, or call `close()`, to release its connections.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        app_id: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        config: ClientConfig | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.config = config or ClientConfig(
            api_key=api_key or "", base_url=base_url, app_id=app_id, timeout=timeout, max_retries=max_retries
        )
        self._transport = SyncTransport(self.config, http_client)
        self.video = VideoResource(self._transport)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> LunosClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
