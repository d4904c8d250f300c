"""Provider capacity: which credential may start an operation now, and what a refusal does to it.

The pool per upstream model is the settings' credentials that serve it. A credential's limits are
its own (settings, over all its models) and, per upstream model, the catalog's (Google's quotas are
per project per base model): a start needs room under both, so for one model the tighter one holds.
Starts go to the credential with room that runs the fewest operations of the model (then the fewest
in all); one that answered 429/5xx cools down with a doubling backoff, one whose key was refused
(401/403) is taken out for `OUT_SECONDS` and reported (log, /metrics, /readyz), and the others
carry on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lunos_events.bus.capacity import Candidate
from lunos_events.bus.redis_bus import Bus
from lunos_events.catalog import Catalog
from lunos_events.settings import ProviderCredential, Settings

log = logging.getLogger(__name__)

# How long a refused credential stays out before it is tried again (a key fixed in the console).
OUT_SECONDS = 600.0
STARTED, BUSY, REFUSED, FAILED = "started", "busy", "refused", "failed"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one credential may do with one upstream model; None: unlimited."""

    starts_per_minute: int | None
    max_in_flight: int | None


def _tighter(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


class Capacity:
    def __init__(self, bus: Bus, settings: Settings, catalog: Catalog) -> None:
        self._scripts = bus.capacity
        self._settings = settings
        self._catalog = catalog
        self._credentials = settings.provider_credentials()
        self.names = [c.name for c in self._credentials]

    def _serving(self, provider_model: str) -> list[ProviderCredential]:
        return [c for c in self._credentials if not c.models or provider_model in c.models]

    def pool(self, provider_model: str) -> list[Candidate]:
        model = self._catalog.capacity(provider_model)
        return [
            Candidate(
                c.name,
                c.max_in_flight or 0,
                c.starts_per_minute or 0,
                model.max_in_flight or 0,
                model.starts_per_minute or 0,
            )
            for c in self._serving(provider_model)
        ]

    def limits(self) -> dict[str, dict[str, Limits]]:
        """Per credential, per upstream model it serves: the effective limits (the tighter of the
        credential's and the catalog's)."""
        effective: dict[str, dict[str, Limits]] = {name: {} for name in self.names}
        for model in self._catalog.upstream_models():
            catalog = self._catalog.capacity(model)
            for c in self._serving(model):
                effective[c.name][model] = Limits(
                    _tighter(c.starts_per_minute, catalog.starts_per_minute),
                    _tighter(c.max_in_flight, catalog.max_in_flight),
                )
        return effective

    async def take(
        self, operation_id: str, provider_model: str, until_ms: int, *, behind_queue: bool
    ) -> str | None:
        """A credential with room for the operation (its slot is now held), or None."""
        candidates = self.pool(provider_model)
        if not candidates:
            return None
        return await self._scripts.take(
            provider_model, candidates, operation_id, until_ms, behind_queue=behind_queue
        )

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
