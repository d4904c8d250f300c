"""Waiting for a generation to finish, without I/O: deadlines, poll pacing and the outcome."""

from __future__ import annotations

import time
from collections.abc import Callable

from lunos_client import calls
from lunos_client.errors import APIConnectionError, APIError, GenerationFailedError, WaitTimeoutError
from lunos_client.models import PENDING, VideoStatus
from lunos_client.streaming import StreamSession
from lunos_client.transport import RetryPolicy

DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_MAX_WAIT = 300.0

StatusCallback = Callable[[VideoStatus], None]
# Failures of the event stream after which a wait carries on by polling: if the problem is real
# (a bad key, an unknown id) polling raises it again; if it was only the stream, polling works.
STREAM_TROUBLE = (APIError, APIConnectionError)


def _stage(status: VideoStatus) -> int:
    if status.is_final:
        return 2
    return 0 if status.status == PENDING else 1  # processing, or a newer unfinished status


def _behind(status: VideoStatus, last: VideoStatus) -> bool:
    """Whether `status` is older news than `last` (statuses only move forward, progress only up)."""
    if _stage(status) != _stage(last):
        return _stage(status) < _stage(last)
    return status.is_processing and (status.progress or 0) < (last.progress or 0)


class Waiter:
    """Tracks one wait: reports each new status once (`on_status`) and each new estimate
    (`on_progress`: a processing one's progress, a queued one's place), and ends it with the video
    or a typed error."""

    def __init__(
        self,
        operation_id: str,
        *,
        poll_interval: float,
        max_wait: float,
        on_status: StatusCallback | None = None,
        on_progress: StatusCallback | None = None,
    ) -> None:
        if poll_interval <= 0 or max_wait <= 0:
            raise ValueError("poll_interval and max_wait must be positive")
        self.operation_id = operation_id
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.deadline = time.monotonic() + max_wait
        self.last: VideoStatus | None = None
        self._on_status = on_status
        self._on_progress = on_progress
        self._last_progress: tuple[str, int | None, int | None] | None = None

    @property
    def wants_progress(self) -> bool:
        return self._on_progress is not None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise WaitTimeoutError(self.operation_id, self.max_wait, self.last)

    def observe(self, status: VideoStatus) -> VideoStatus | None:
        """The final status if the generation completed; GenerationFailedError if it ended without."""
        if self.last is not None and _behind(status, self.last):
            return None  # an older event replayed after a poll showed more: not news
        if self.last is None or self.last.status != status.status:
            if self._on_status is not None:
                self._on_status(status)
        self._report_progress(status)
        self.last = status
        if status.is_final:
            if not status.is_completed:
                raise GenerationFailedError(status)
            return status
        return None

    def _report_progress(self, status: VideoStatus) -> None:
        """`on_progress` for each new estimate: a processing one's progress, a queued one's place."""
        if self._on_progress is None:
            return
        if not (status.is_queued or (status.is_processing and status.progress is not None)):
            return  # nothing estimated (e.g. a pending event: it carries times only)
        estimate = (status.status, status.progress, status.queue_position)
        if estimate != self._last_progress:
            self._last_progress = estimate
            self._on_progress(status)

    def poll_delay(self) -> float:
        """Seconds until the next poll, never past the deadline (WaitTimeoutError once it passed)."""
        self.check_deadline()
        return min(self.poll_interval, self.remaining())

    def stream_session(self, events_url: str, policy: RetryPolicy) -> StreamSession:
        """The operation's stream at the `events_url` the server handed out (it carries its token).

        Each connection's read timeout ends at the deadline, so silence cannot hold the wait past it.
        """
        return StreamSession(
            calls.stream_url(events_url),
            policy,
            ends_on_final=True,
            read_timeout=lambda: max(0.1, min(policy.config.timeout, self.remaining())),
        )
