"""A pool of provider credentials behind the one provider interface.

Each credential (a Google project + location, or an express-mode API key) gets its own client; a
job names the credential that starts it, and the same credential polls it later (the operation
name is only valid for the project that created it). Which credential has room is decided by the
capacity scripts (bus/capacity.py), not here.
"""

from __future__ import annotations

from collections.abc import Mapping

from lunos_events.providers.base import GenerationJob, ProviderResult, ProviderStartError, VideoProvider


class ProviderPool:
    def __init__(self, providers: Mapping[str, VideoProvider]) -> None:
        if not providers:
            raise ValueError("a provider pool needs at least one credential")
        self._providers = dict(providers)
        self._first = next(iter(self._providers))

    @property
    def credentials(self) -> list[str]:
        return list(self._providers)

    def _for(self, job: GenerationJob) -> VideoProvider:
        name = job.credential or self._first
        provider = self._providers.get(name)
        if provider is None:
            # A credential removed from the settings while its operations were running.
            raise ProviderStartError(f"unknown provider credential {name!r}")
        return provider

    async def start(self, job: GenerationJob) -> str:
        return await self._for(job).start(job)

    async def poll(self, operation_name: str, job: GenerationJob) -> ProviderResult:
        return await self._for(job).poll(operation_name, job)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
