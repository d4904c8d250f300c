"""Provider capacity in Redis: per credential, starts per minute and operations in flight, counted
for the credential as a whole and for each upstream model on it (Google's quotas are per base model).

One Lua script checks every candidate credential and reserves a slot on the one with room under
both counts that runs the fewest operations of the model (Google's quotas are per base model; then
the fewest in all), so any number of API and worker processes share a credential's quota without
a race. As in the tier limits (bus/limits.py), in-flight operations are a sorted set scored
by their deadline: a lost release frees itself. A credential that answered 429/5xx cools down (a key
with a TTL); one whose key was refused (401/403) is out for longer. Redis only counts: the database
says which credential holds which operation, and the worker's reconcile puts lost slots back.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

WINDOW_MS = 60_000
_DAY_MS = 86_400_000

# KEYS: per candidate in_flight, starts, cool, out, and its model's in_flight, starts. ARGV:
# member, until_ms, the model's "queue not empty" flag key ('' to ignore it), then per candidate
# max_in_flight, starts_per_minute, and the model's max_in_flight, starts_per_minute (0: unlimited).
# Returns the 1-based candidate taken, or 0.
#
# A release names the credentials only (whoever ends an operation does not know its model), so it
# frees the credential's in_flight set alone; the model's set drops what was freed here, by keeping
# only the members still in the credential's set (ZINTERSTORE, weights 1 0: the model set's scores).
_TAKE = """
if ARGV[3] ~= '' and redis.call('EXISTS', ARGV[3]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function full(key, limit)
  return limit > 0 and redis.call('ZCARD', key) >= limit
end
local best, best_model_used, best_used = 0, nil, nil
for i = 1, #KEYS / 6 do
  local k, a = (i - 1) * 6, 3 + (i - 1) * 4
  local in_flight, starts, model_in_flight, model_starts = KEYS[k + 1], KEYS[k + 2], KEYS[k + 5], KEYS[k + 6]
  if redis.call('EXISTS', KEYS[k + 3]) == 0 and redis.call('EXISTS', KEYS[k + 4]) == 0 then
    redis.call('ZREMRANGEBYSCORE', in_flight, '-inf', now)
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - 60000)
    redis.call('ZREMRANGEBYSCORE', model_starts, '-inf', now - 60000)
    if redis.call('EXISTS', model_in_flight) == 1 then
      redis.call('ZINTERSTORE', model_in_flight, 2, model_in_flight, in_flight, 'WEIGHTS', 1, 0)
      redis.call('PEXPIRE', model_in_flight, 86400000)  -- a store drops the key's expiry
    end
    local used, model_used = redis.call('ZCARD', in_flight), redis.call('ZCARD', model_in_flight)
    if not (full(in_flight, tonumber(ARGV[a + 1])) or full(starts, tonumber(ARGV[a + 2]))
        or full(model_in_flight, tonumber(ARGV[a + 3])) or full(model_starts, tonumber(ARGV[a + 4])))
        and (best == 0 or model_used < best_model_used
             or (model_used == best_model_used and used < best_used)) then
      best, best_model_used, best_used = i, model_used, used
    end
  end
end
if best == 0 then return 0 end
local k = (best - 1) * 6
for _, key in ipairs({KEYS[k + 1], KEYS[k + 5]}) do
  redis.call('ZADD', key, tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', key, 86400000)
end
for _, key in ipairs({KEYS[k + 2], KEYS[k + 6]}) do
  redis.call('ZADD', key, now, ARGV[1] .. ':' .. now)
  redis.call('PEXPIRE', key, 60000)
end
return best
"""

# KEYS: cool, backoff. ARGV: first_ms, max_ms. Doubles the credential's cool-down; returns it in ms.
_COOL = """
local backoff = tonumber(redis.call('GET', KEYS[2]) or '0')
if backoff == 0 then backoff = tonumber(ARGV[1]) else backoff = math.min(backoff * 2, tonumber(ARGV[2])) end
redis.call('SET', KEYS[2], backoff, 'PX', 3600000)
redis.call('SET', KEYS[1], 1, 'PX', backoff)
return backoff
"""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A credential that may take a start of one upstream model, and its limits (0: unlimited)."""

    name: str
    max_in_flight: int  # the credential's operations, of every model
    starts_per_minute: int
    model_max_in_flight: int = 0  # its operations of the model being started
    model_starts_per_minute: int = 0


class CapacityScripts:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}:capacity"
        self._take = redis.register_script(_TAKE)
        self._cool = redis.register_script(_COOL)

    def _key(self, name: str, part: str) -> str:
        return f"{self._prefix}:{name}:{part}"

    @property
    def wake_key(self) -> str:
        """A list the dispatchers block on: pushed whenever a slot frees."""
        return f"{self._prefix}:wake"

    def _model_key(self, name: str, model: str, part: str) -> str:
        return f"{self._prefix}:{name}:model:{model}:{part}"

    def _queued_key(self, model: str) -> str:
        return f"{self._prefix}:queued:{model}"

    async def take(
        self,
        model: str,
        candidates: list[Candidate],
        member: str,
        until_ms: int,
        *,
        behind_queue: bool = False,
    ) -> str | None:
        """Reserve a slot for `member`, an operation of the upstream `model`, on the candidate with
        room that runs the fewest of the model (then the fewest in all); None when none has, or
        (`behind_queue`) when operations of the model are waiting: a new submit does not jump them."""
        keys = []
        args: list[str | int] = [member, until_ms, self._queued_key(model) if behind_queue else ""]
        for c in candidates:
            keys += [self._key(c.name, part) for part in ("in_flight", "starts", "cool", "out")]
            keys += [self._model_key(c.name, model, part) for part in ("in_flight", "starts")]
            args += [c.max_in_flight, c.starts_per_minute, c.model_max_in_flight, c.model_starts_per_minute]
        index = int(await self._take(keys=keys, args=args))
        return candidates[index - 1].name if index else None

    async def release(self, names: list[str], *members: str) -> None:
        """Free the members' slots (on whichever of `names` holds them) and wake the dispatchers."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrem(self._key(name, "in_flight"), *members)
            await self._ring(pipe).execute()

    def _ring(self, pipe: Pipeline) -> Pipeline:
        # One pending wake-up is enough: every dispatcher round looks at the whole queue.
        pipe.lpush(self.wake_key, 1)
        pipe.ltrim(self.wake_key, 0, 0)
        return pipe

    async def mark_queued(self, model: str, waiting: bool, ttl_seconds: float = 5.0) -> None:
        """Say whether `model` has operations waiting (the dispatchers refresh it every round)."""
        if waiting:
            await self._redis.set(self._queued_key(model), 1, px=int(ttl_seconds * 1000))
        else:
            await self._redis.delete(self._queued_key(model))

    async def count_start(self, name: str, outcome: str) -> None:
        # Through a pipeline: redis-py types the hash commands as "maybe awaitable", which mypy refuses.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(f"{self._prefix}:starts", f"{name}|{outcome}", 1)
            await pipe.execute()

    async def start_counts(self) -> dict[tuple[str, str], int]:
        """Starts so far by (credential, outcome), across every process."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{self._prefix}:starts")
            (raw,) = await pipe.execute()
        counts = {}
        for field, value in raw.items():
            text = field.decode() if isinstance(field, bytes) else str(field)
            name, _, outcome = text.partition("|")
            counts[name, outcome] = int(value)
        return counts

    async def wake(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._ring(pipe).execute()

    async def wait_for_wake(self, timeout_seconds: float) -> None:
        """Block until a slot frees (or the timeout): only a dispatcher calls it, outside job slots."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.blpop([self.wake_key], timeout=max(1, round(timeout_seconds)))
            await pipe.execute()

    async def cool_down(self, name: str, first_seconds: float, max_seconds: float) -> float:
        """Keep `name` out of `take` for a doubling while; returns the seconds."""
        keys = [self._key(name, "cool"), self._key(name, "backoff")]
        ms = await self._cool(keys=keys, args=[int(first_seconds * 1000), int(max_seconds * 1000)])
        return int(ms) / 1000

    async def recovered(self, name: str) -> None:
        """A start went through: the next cool-down starts from the first step again."""
        await self._redis.delete(self._key(name, "backoff"))

    async def take_out(self, name: str, seconds: float) -> None:
        await self._redis.set(self._key(name, "out"), 1, px=int(seconds * 1000))

    async def health(self, names: list[str]) -> dict[str, tuple[str, int]]:
        """Per credential: ("ok" | "cooling" | "out", operations in flight)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(self._key(name, "out"))
                pipe.exists(self._key(name, "cool"))
                pipe.zcard(self._key(name, "in_flight"))
            replies = await pipe.execute()
        health = {}
        for i, name in enumerate(names):
            out, cool, used = replies[i * 3 : i * 3 + 3]
            health[name] = ("out" if out else "cooling" if cool else "ok", int(used))
        return health

    async def restore(self, name: str, model: str, operations: list[tuple[str, int]]) -> None:
        """Slots for (operation id, until_ms) pairs of `model` on credential `name` that a Redis
        restart lost, in both counts (ZADD: already there is fine)."""
        if not operations:
            return
        slots = {op_id: until for op_id, until in operations}
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in (self._key(name, "in_flight"), self._model_key(name, model, "in_flight")):
                pipe.zadd(key, slots)
                pipe.pexpire(key, _DAY_MS)
            await pipe.execute()
