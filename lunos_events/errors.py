"""Domain errors. Services raise these; `api.errors` maps them to HTTP responses in one place."""

from __future__ import annotations


class LunosError(Exception):
    """Base of every error a client may see; `message` is shown as `{"error": message}`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(LunosError):
    pass


class Unauthenticated(LunosError):
    pass


class Forbidden(LunosError):
    pass


class InsufficientBalance(LunosError):
    def __init__(self) -> None:
        super().__init__("Insufficient balance")


class NotFound(LunosError):
    pass


class ModelNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Model not found")


class Conflict(LunosError):
    pass


class PayloadTooLarge(LunosError):
    pass


class ProviderStartFailed(LunosError):
    def __init__(self) -> None:
        super().__init__("Failed to start video generation")


class ServiceUnavailable(LunosError):
    pass


class RateLimited(LunosError):
    """Over a tier limit (429), with the rate window's figures (api/ sends them as headers)."""

    def __init__(self, message: str, limit: int, remaining: int, reset_ms: int, retry_after: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.remaining = remaining
        self.reset_ms = reset_ms
        self.retry_after = retry_after


class InFlightLimited(RateLimited):
    """Refused because the tier's generations in flight are all taken (rather than the per-minute rate)."""


# Why a failed operation failed: `error_code` of its status, beside the readable `error`.
SAFETY_FILTERED = "safety_filtered"
PROVIDER_ERROR = "provider_error"
PROVIDER_LOST = "provider_lost"
DEADLINE_EXCEEDED = "deadline_exceeded"
START_FAILED_CODE = "start_failed"
INPUT_INVALID = "input_invalid"
INPUT_UNREACHABLE = "input_unreachable"
ERROR_CODES = (
    SAFETY_FILTERED,
    PROVIDER_ERROR,
    PROVIDER_LOST,
    DEADLINE_EXCEEDED,
    START_FAILED_CODE,
    INPUT_INVALID,
    INPUT_UNREACHABLE,
)
