"""Waiting for a generation to finish, without I/O: deadlines, poll pacing and the outcome."""

from __future__ import annotations

import time
from collections.abc import Callable

from lunos_client import calls
from lunos_client.errors import APIConnectionError, APIError, GenerationFailedError, WaitTimeoutError
from lunos_client.models import VideoStatus
from lunos_client.streaming import StreamSession
from lunos_client.transport import RetryPolicy

DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_MAX_WAIT = 300.0

StatusCallback = Callable[[VideoStatus], None]
# Failures of the event stream after which a wait carries on by polling: if the problem is real
# (a bad key, an unknown id) polling raises it again; if it was only the stream, polling works.
STREAM_TROUBLE = (APIError, APIConnectionError)


class Waiter:
    """Tracks one wait: reports each new status once, and ends it with the video or a typed error."""

    def __init__(
        self,
        operation_id: str,
        *,
        poll_interval: float,
        max_wait: float,
        on_status: StatusCallback | None = None,
    ) -> None:
        if poll_interval <= 0 or max_wait <= 0:
            raise ValueError("poll_interval and max_wait must be positive")
        self.operation_id = operation_id
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.deadline = time.monotonic() + max_wait
        self.last: VideoStatus | None = None
        self._on_status = on_status

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise WaitTimeoutError(self.operation_id, self.max_wait, self.last)

    def observe(self, status: VideoStatus) -> VideoStatus | None:
        """The final status if the generation completed; GenerationFailedError if it ended without."""
        if self.last is None or self.last.status != status.status:
            if self._on_status is not None:
                self._on_status(status)
        self.last = status
        if status.is_final:
            if not status.is_completed:
                raise GenerationFailedError(status)
            return status
        return None

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
