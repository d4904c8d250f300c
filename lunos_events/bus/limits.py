"""The tier limits' Redis scripts: submits per minute and generations in flight, per account, and
the same two shapes (a sliding window, a set of expiring slots) for the other caps.

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

# KEYS: window, slots. ARGV: per_minute, max_slots, window_ms, member, slot_ttl_ms.
# A negative per_minute leaves the window alone, a negative max_slots the slots (KEYS[i] unused).
# Returns {allowed (1/0), limit, remaining, reset_ms, retry_after_ms, reason}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_minute, max_slots = tonumber(ARGV[1]), tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local used, reset = 0, now + window
if per_minute >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  used = redis.call('ZCARD', KEYS[1])
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if oldest[2] then reset = tonumber(oldest[2]) + window end
  if used >= per_minute then
    return {0, per_minute, 0, reset, math.max(reset - now, 1), 'rate'}
  end
end
if max_slots >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max_slots then
    return {0, per_minute, per_minute - used, reset, 0, 'in_flight'}
  end
end
if per_minute >= 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
end
if max_slots >= 0 then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
if used == 0 then reset = now + window end
return {1, per_minute, per_minute - used - 1, reset, 0, ''}
"""

# KEYS: slots. ARGV: ttl_ms, member, member, ... Pushes held slots' expiry (Redis's clock, like the
# take); a released member is not added back.
_REFRESH = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i]) end
return 1
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
        self._refresh = redis.register_script(_REFRESH)

    def key(self, account_id: str, name: str) -> str:
        """The Redis key of one of an account's (or one API key's) limits."""
        return f"{self._prefix}:limits:{account_id}:{name}"

    def in_flight_key(self, account_id: str) -> str:
        return self.key(account_id, "in_flight")

    async def _run(self, keys: list[str], args: list[str | int]) -> Taken:
        allowed, limit, remaining, reset_ms, retry_ms, reason = await self._take(keys=keys, args=args)
        return Taken(
            allowed=bool(allowed),
            limit=int(limit),
            remaining=int(remaining),
            reset_ms=int(reset_ms),
            retry_after_ms=int(retry_ms),
            over_rate=reason in (b"rate", "rate"),
        )

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
        return await self._run(
            [self.key(account_id, "submits"), self.in_flight_key(account_id)],
            [per_minute, max_in_flight, window_ms, reservation, reservation_ttl_ms],
        )

    async def take_rate(self, key: str, *, per_minute: int, window_ms: int, member: str) -> Taken:
        """Count one request in the sliding window at `key`, if it has room."""
        return await self._run([key, key], [per_minute, -1, window_ms, member, 0])

    async def take_slot(self, key: str, *, max_slots: int, member: str, ttl_ms: int) -> bool:
        """Hold a slot of the expiring set at `key` under `member` for `ttl_ms`, if one is free."""
        return (await self._run([key, key], [-1, max_slots, 0, member, ttl_ms])).allowed

    async def refresh_slots(self, key: str, members: list[str], ttl_ms: int) -> None:
        """Hold these slots of `key` for another `ttl_ms`; released ones stay released."""
        await self._refresh(keys=[key], args=[ttl_ms, *members])

    async def release_slot(self, key: str, member: str) -> None:
        await self._redis.zrem(key, member)

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
