"""Typed errors: one class per thing a caller may want to handle differently.

Every HTTP error is an `APIError(status, message)`; its subclass says which case it is. The server
always answers `{"error": "<message>"}`, so `message` is the server's own words.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from lunos_client.models import VideoStatus


class LunosClientError(Exception):
    """Base of every error the client raises."""


class APIError(LunosClientError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class BadRequestError(APIError):
    """400 or 413: the request itself is wrong (missing fields, bad values, too large)."""


class AuthenticationError(APIError):
    """401: missing, invalid or revoked API key (or an expired stream token)."""


class InsufficientBalanceError(APIError):
    """402: the account cannot pay for this generation."""


class PermissionDeniedError(APIError):
    """403: authenticated, but not allowed to do this."""


class NotFoundError(APIError):
    """404: no such operation (or one of another account: they look the same)."""


class ModelNotFoundError(NotFoundError):
    """404 `Model not found`: the model id is not in the server's catalog."""


class ConflictError(APIError):
    """409: the operation is not in a state that allows this (e.g. cancelling a finished one)."""


class RateLimitError(APIError):
    """429: too many requests; `retry_after` is how many seconds the server asked to wait."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server or its provider failed (502 `Failed to start video generation`, 503 …)."""


class APIConnectionError(LunosClientError):
    """The server could not be reached, or the connection broke, after every retry."""


class GenerationFailedError(LunosClientError):
    """The generation ended without a video (failed or cancelled); `status` is its final state."""

    def __init__(self, status: VideoStatus) -> None:
        super().__init__(f"{status.id} {status.status}: {status.error or 'no video was produced'}")
        self.status = status
        self.error = status.error


class VideoNotReadyError(LunosClientError):
    """A download was asked for an operation that has no video yet."""


class WaitTimeoutError(LunosClientError, TimeoutError):
    """`generate_and_wait` gave up after `max_wait`; `last_status` is the last state it saw."""

    def __init__(self, operation_id: str, max_wait: float, last_status: VideoStatus | None) -> None:
        super().__init__(f"{operation_id} did not finish within {max_wait:g}s")
        self.operation_id = operation_id
        self.last_status = last_status


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
}
MODEL_NOT_FOUND = "Model not found"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("error") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    return response.reason_phrase or f"HTTP {response.status_code}"


def error_from_response(response: httpx.Response) -> APIError:
    """The typed error for an error response (its body must have been read)."""
    status = response.status_code
    message = error_message(response)
    if status == 429:
        return RateLimitError(status, message, retry_after_seconds(response))
    if status == 404 and message == MODEL_NOT_FOUND:
        return ModelNotFoundError(status, message)
    if status >= 500:
        return ServerError(status, message)
    return _BY_STATUS.get(status, APIError)(status, message)
