"""The tier limits' Redis scripts: submits per minute and generations in flight, per account.

Both are checked and taken in one Lua script, so they hold across any number of API replicas
without a race. Submits per minute is a sliding window (a sorted set of submit times), so there is
no burst of twice the limit around a window edge. In-flight generations are a sorted set of
operation ids scored by when they stop counting (their deadline), so an operation whose release
was lost (a crash, Redis briefly away) frees its slot by itself instead of blocking the account.
What a refusal means for the caller is services/limits.py's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

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

# KEYS: in_flight. ARGV: operation id, until_ms, operation id, until_ms, ...
# Only into a missing set: that is what a Redis that came back empty leaves behind.
_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 1, #ARGV, 2 do redis.call('ZADD', KEYS[1], tonumber(ARGV[i + 1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 86400000)
return (#ARGV) / 2
"""


@dataclass(frozen=True, slots=True)
class Taken:
    """What the take script answered: granted or not, and the rate window's figures."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int
    retry_after_ms: int
    over_rate: bool  # refused by the per-minute rate (else, when refused, by the in-flight slots)


class LimitScripts:
    """The scripts, registered once per Redis client (redis-py runs them by SHA, loading on a miss)."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._take = redis.register_script(_TAKE)
        self._confirm = redis.register_script(_CONFIRM)
        self._restore = redis.register_script(_RESTORE)

    def _keys(self, account_id: str) -> list[str]:
        prefix = f"{self._prefix}:limits:{account_id}"
        return [f"{prefix}:submits", f"{prefix}:in_flight"]

    def in_flight_key(self, account_id: str) -> str:
        return self._keys(account_id)[1]

    async def take(
        self,
        account_id: str,
        *,
        per_minute: int,
        max_in_flight: int,
        window_ms: int,
        reservation: str,
        reservation_ttl_ms: int,
    ) -> Taken:
        """Count a submit and reserve an in-flight slot under `reservation`, if both limits allow."""
        allowed, limit, remaining, reset_ms, retry_ms, reason = await self._take(
            keys=self._keys(account_id),
            args=[per_minute, max_in_flight, window_ms, reservation, reservation_ttl_ms],
        )
        return Taken(
            allowed=bool(allowed),
            limit=int(limit),
            remaining=int(remaining),
            reset_ms=int(reset_ms),
            retry_after_ms=int(retry_ms),
            over_rate=reason in (b"rate", "rate"),
        )

    async def confirm(self, account_id: str, reservation: str, operation_id: str, until_ms: int) -> None:
        """The reserved slot passes to the operation, held until it ends (or `until_ms` at the latest)."""
        await self._confirm(keys=[self.in_flight_key(account_id)], args=[reservation, operation_id, until_ms])

    async def give_back(self, account_id: str, *members: str) -> None:
        await self._redis.zrem(self.in_flight_key(account_id), *members)

    async def holders(self, account_id: str) -> list[str]:
        """Who holds the account's slots: operation ids and reservations."""
        members = await self._redis.zrange(self.in_flight_key(account_id), 0, -1)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def restore(self, account_id: str, operations: list[tuple[str, int]]) -> int:
        """Slots for (operation id, until_ms) pairs, only into a set Redis lost; returns how many."""
        args = [value for op_id, until_ms in operations for value in (op_id, until_ms)]
        return int(await self._restore(keys=[self.in_flight_key(account_id)], args=args))
