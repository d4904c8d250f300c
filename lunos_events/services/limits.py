"""Per-tier limits on submits per minute and generations in flight (the scripts: bus/limits.py).

A submit takes a slot before anything is charged; the slot passes to the operation once it exists
and is given back when it ends. A reservation whose submit never happened expires by itself.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis.exceptions import RedisError

from lunos_events.bus.redis_bus import Bus
from lunos_events.errors import InFlightLimited, RateLimited
from lunos_events.ids import random_token
from lunos_events.settings import TierLimits

log = logging.getLogger(__name__)

# A reservation made before the operation exists; it becomes the operation id once created, and
# expires by itself if the API process dies in between.
RESERVATION_TTL_MS = 60_000
RESERVATION_PREFIX = "reservation:"
IN_FLIGHT_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Quota:
    """A granted submit: the rate window's figures, and the reservation to confirm or give back."""

    reservation: str
    limit: int
    remaining: int
    reset_ms: int


async def take_submit(bus: Bus, account_id: str, limits: TierLimits, window_seconds: float = 60.0) -> Quota:
    """Count a submit and reserve an in-flight slot, or raise RateLimited / InFlightLimited (429)."""
    reservation = RESERVATION_PREFIX + random_token(16)
    taken = await bus.limits.take(
        account_id,
        per_minute=limits.submits_per_minute,
        max_in_flight=limits.max_in_flight,
        window_ms=int(window_seconds * 1000),
        reservation=reservation,
        reservation_ttl_ms=RESERVATION_TTL_MS,
    )
    quota = Quota(reservation, taken.limit, max(taken.remaining, 0), taken.reset_ms)
    if taken.allowed:
        return quota
    if taken.over_rate:
        retry_after = max(math.ceil(taken.retry_after_ms / 1000), 1)
        message = f"Rate limit exceeded: {limits.submits_per_minute} submits per minute for this tier"
        raise RateLimited(message, quota.limit, quota.remaining, quota.reset_ms, retry_after)
    message = (
        f"Too many generations in flight: at most {limits.max_in_flight} at once for this tier; "
        "wait for one to finish"
    )
    raise InFlightLimited(
        message, quota.limit, quota.remaining, quota.reset_ms, IN_FLIGHT_RETRY_AFTER_SECONDS
    )


async def take_rate(
    bus: Bus, scope: str, name: str, per_minute: int, what: str, window_seconds: float = 60.0
) -> None:
    """Count one request against a per-minute cap (`scope`: an account id, or `key:<hash>` for an
    API key), or raise RateLimited (429 with Retry-After)."""
    taken = await bus.limits.take_rate(
        bus.limits.key(scope, name),
        per_minute=per_minute,
        window_ms=int(window_seconds * 1000),
        member=random_token(12),
    )
    if not taken.allowed:
        raise RateLimited(
            f"Rate limit exceeded: {per_minute} {what} per minute for this tier",
            taken.limit,
            0,
            taken.reset_ms,
            max(math.ceil(taken.retry_after_ms / 1000), 1),
        )


def api_key_scope(key_hash: str) -> str:
    """The limit scope of one API key (account ids never contain ':', so no clash)."""
    return "key:" + key_hash[:32]


async def give_back(bus: Bus, account_id: str, *members: str) -> None:
    """Free in-flight slots (operations ended, or a submit that reserved one did not happen).

    Best effort: if Redis is away a slot frees itself at its expiry.
    """
    try:
        await bus.limits.give_back(account_id, *members)
    except (RedisError, OSError) as exc:
        log.warning("in-flight slots %s of %s not released now: %s", members, account_id, exc)


async def operations_in_flight(bus: Bus, account_id: str) -> list[str]:
    """The operation ids holding the account's in-flight slots (reservations left out)."""
    return [m for m in await bus.limits.holders(account_id) if not m.startswith(RESERVATION_PREFIX)]


async def restore_in_flight(bus: Bus, account_id: str, operations: list[tuple[str, int]]) -> int:
    """Give an account's pending operations their in-flight slots back after Redis lost them.

    An operation that ended between the database read and this call gets a slot it does not
    need; like any lost release, it frees itself at the operation's deadline.
    """
    return await bus.limits.restore(account_id, operations)
