"""When to try a failed delivery again: the retry schedule, jitter and `Retry-After`."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

# Retry-After is honoured up to this long; a larger value is a misconfigured receiver, not a plan.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
JITTER = 0.1


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_delay(
    schedule: tuple[float, ...], failed_attempts: int, retry_after: float | None = None
) -> float | None:
    """Seconds until the next attempt after `failed_attempts` failures, or None when out of retries.

    Jitter (±10%) spreads the retries of many deliveries that failed together (a receiver outage).
    """
    if failed_attempts > len(schedule):
        return None
    if retry_after is not None:
        return retry_after
    base = schedule[failed_attempts - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)
