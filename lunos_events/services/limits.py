"""Per-tier limits on submits per minute and generations in flight, held in Redis.

Both are checked and taken in one Lua script, so they hold across any number of API replicas
without a race. Submits per minute is a sliding window (a sorted set of submit times), so there is
no burst of twice the limit around a window edge. In-flight generations are a sorted set of
operation ids scored by when they stop counting (their deadline), so an operation whose release
was lost (a crash, Redis briefly away) frees its slot by itself instead of blocking the account.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from lunos_events.errors import InFlightLimited, RateLimited
from lunos_events.ids import random_token
from lunos_events.redis_batches import RedisBatches, RedisCommands
from lunos_events.settings import TierLimits

log = logging.getLogger(__name__)

# A reservation made before the operation exists; it becomes the operation id once created, and
# expires by itself if the API process dies in between.
RESERVATION_TTL_MS = 60_000
IN_FLIGHT_RETRY_AFTER_SECONDS = 5

# KEYS: window, in_flight. ARGV: per_minute, max_in_flight, window_ms, reservation, reservation_ttl_ms.
# Returns {allowed (1/0), limit, remaining, reset_ms, retry_after_ms, reason}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_minute, max_in_flight = tonumber(ARGV[1]), tonumber(ARGV[2])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local used = redis.call('ZCARD', KEYS[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = now + window
if oldest[2] then reset = tonumber(oldest[2]) + window end
if used >= per_minute then
  return {0, per_minute, 0, reset, math.max(reset - now, 1), 'rate'}
end
if redis.call('ZCARD', KEYS[2]) >= max_in_flight then
  return {0, per_minute, per_minute - used, reset, 0, 'in_flight'}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], 86400000)
if used == 0 then reset = now + window end
return {1, per_minute, per_minute - used - 1, reset, 0, ''}
"""

# KEYS: in_flight. ARGV: reservation, operation id, until_ms. Swaps a reservation for the operation.
_CONFIRM = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], 86400000)
return 1
"""


@dataclass(frozen=True)
class Quota:
    """A granted submit: the headers to send, and the reservation to confirm or give back."""

    reservation: str
    headers: dict[str, str]


def _keys(prefix: str, account_id: str) -> tuple[str, str]:
    return f"{prefix}:limits:{account_id}:submits", f"{prefix}:limits:{account_id}:in_flight"


def _headers(limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(remaining, 0)),
        "X-RateLimit-Reset": str(math.ceil(reset_ms / 1000)),
    }


async def take_submit(
    batches: RedisBatches, prefix: str, account_id: str, limits: TierLimits, window_seconds: float = 60.0
) -> Quota:
    """Count a submit and reserve an in-flight slot, or raise RateLimited (429)."""
    reservation = f"reservation:{random_token(16)}"
    ((allowed, limit, remaining, reset_ms, retry_ms, reason),) = await batches.execute(
        lambda pipe: pipe.eval(
            _TAKE,
            2,
            *_keys(prefix, account_id),
            limits.submits_per_minute,
            limits.max_in_flight,
            int(window_seconds * 1000),
            reservation,
            RESERVATION_TTL_MS,
        )
    )
    headers = _headers(int(limit), int(remaining), int(reset_ms))
    if allowed:
        return Quota(reservation, headers)
    if reason in (b"rate", "rate"):
        retry_after = math.ceil(int(retry_ms) / 1000)
        message = f"Rate limit exceeded: {limits.submits_per_minute} submits per minute for this tier"
        raise RateLimited(message, {**headers, "Retry-After": str(max(retry_after, 1))})
    message = (
        f"Too many generations in flight: at most {limits.max_in_flight} at once for this tier; "
        "wait for one to finish"
    )
    raise InFlightLimited(message, {**headers, "Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)})


def queue_confirm(
    pipe: RedisCommands, prefix: str, account_id: str, quota: Quota, operation_id: str, until_ms: int
) -> None:
    """The operation exists: it holds the in-flight slot until it ends (or `until_ms` at the latest).

    Added to the caller's pipeline, which sends it with the operation's other commands.
    """
    pipe.eval(_CONFIRM, 1, _keys(prefix, account_id)[1], quota.reservation, operation_id, until_ms)


async def give_back(redis: Redis, prefix: str, account_id: str, *members: str) -> None:
    """Free in-flight slots (operations ended, or a submit that reserved one did not happen).

    Best effort: if Redis is away a slot frees itself at its expiry.
    """
    try:
        await redis.zrem(_keys(prefix, account_id)[1], *members)
    except (RedisError, OSError) as exc:
        log.warning("in-flight slots %s of %s not released now: %s", members, account_id, exc)


async def operations_in_flight(redis: Redis, prefix: str, account_id: str) -> list[str]:
    """The operation ids holding the account's in-flight slots (reservations left out)."""
    members = await redis.zrange(_keys(prefix, account_id)[1], 0, -1)
    ids = [m.decode() if isinstance(m, bytes) else m for m in members]
    return [m for m in ids if not m.startswith("reservation:")]


# KEYS: in_flight. ARGV: operation id, until_ms, operation id, until_ms, ...
# Only into a missing set: that is what a Redis that came back empty leaves behind.
_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 1, #ARGV, 2 do redis.call('ZADD', KEYS[1], tonumber(ARGV[i + 1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 86400000)
return (#ARGV) / 2
"""


async def restore_in_flight(
    redis: Redis, prefix: str, account_id: str, operations: list[tuple[str, int]]
) -> int:
    """Give an account's pending operations their in-flight slots back after Redis lost them.

    An operation that ended between the database read and this call gets a slot it does not
    need; like any lost release, it frees itself at the operation's deadline.
    """
    args = [value for op_id, until_ms in operations for value in (op_id, until_ms)]
    return int(await redis.eval(_RESTORE, 1, _keys(prefix, account_id)[1], *args))
