"""HTTP headers that carry service state: the tier's rate-limit figures and the idempotent replay mark."""

from __future__ import annotations

import math

from lunos_events.errors import RateLimited
from lunos_events.services.admission import Admitted

REPLAYED = {"Idempotent-Replayed": "true"}


def rate_limit_headers(limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(remaining, 0)),
        "X-RateLimit-Reset": str(math.ceil(reset_ms / 1000)),
    }


def refusal_headers(error: RateLimited) -> dict[str, str]:
    return {
        **rate_limit_headers(error.limit, error.remaining, error.reset_ms),
        "Retry-After": str(error.retry_after),
    }


def submit_headers(admitted: Admitted) -> dict[str, str]:
    quota = admitted.quota
    if quota is None:
        return REPLAYED
    return rate_limit_headers(quota.limit, quota.remaining, quota.reset_ms)
