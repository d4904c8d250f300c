"""Provider capacity: which credential may start an operation now, and what a refusal does to it.

The pool per upstream model is the settings' credentials that serve it. Starts go to the least
busy one with room; a credential that answered 429/5xx cools down with a doubling backoff, one
whose key was refused (401/403) is taken out for `OUT_SECONDS` and reported (log, /metrics,
/readyz), and the others carry on.
"""

from __future__ import annotations

import logging

from lunos_events.bus.capacity import Candidate
from lunos_events.bus.redis_bus import Bus
from lunos_events.settings import ProviderCredential, Settings

log = logging.getLogger(__name__)

# How long a refused credential stays out before it is tried again (a key fixed in the console).
OUT_SECONDS = 600.0
STARTED, BUSY, REFUSED, FAILED = "started", "busy", "refused", "failed"


def _candidate(credential: ProviderCredential) -> Candidate:
    return Candidate(credential.name, credential.max_in_flight or 0, credential.starts_per_minute or 0)


class Capacity:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self._scripts = bus.capacity
        self._settings = settings
        self._credentials = settings.provider_credentials()
        self.names = [c.name for c in self._credentials]

    def pool(self, provider_model: str) -> list[Candidate]:
        return [_candidate(c) for c in self._credentials if not c.models or provider_model in c.models]

    async def take(
        self, operation_id: str, provider_model: str, until_ms: int, *, behind_queue: bool
    ) -> str | None:
        """A credential with room for the operation (its slot is now held), or None."""
        candidates = self.pool(provider_model)
        if not candidates:
            return None
        queue = provider_model if behind_queue else None
        return await self._scripts.take(candidates, operation_id, until_ms, behind_queue=queue)

    async def release(self, *operation_ids: str) -> None:
        await self._scripts.release(self.names, *operation_ids)

    async def queued(self, provider_model: str, waiting: bool = True) -> None:
        await self._scripts.mark_queued(provider_model, waiting)

    async def outcome(self, credential: str, outcome: str, detail: str = "") -> None:
        """Count a start attempt and apply what it says about the credential."""
        scripts = self._scripts
        await scripts.count_start(credential, outcome)
        if outcome == STARTED:
            await scripts.recovered(credential)
        elif outcome == BUSY:
            first, most = (
                self._settings.capacity_cooldown_seconds,
                self._settings.capacity_cooldown_max_seconds,
            )
            seconds = await scripts.cool_down(credential, first, most)
            log.warning("credential %s is busy (%s): cooling down for %.1fs", credential, detail, seconds)
        elif outcome == REFUSED:
            await scripts.take_out(credential, OUT_SECONDS)
            log.error("credential %s was refused (%s): taken out of the pool", credential, detail)

    async def start_counts(self) -> dict[tuple[str, str], int]:
        return await self._scripts.start_counts()

    async def health(self) -> dict[str, tuple[str, int]]:
        return await self._scripts.health(self.names)

    async def wait_for_wake(self, seconds: float) -> None:
        await self._scripts.wait_for_wake(seconds)
