"""The model catalog: public model ids, the upstream models serving them, prices and capabilities.

The catalog is data, not code: `catalog.toml` in this package is the default, and `LUNOS_CATALOG`
names an operator file that replaces or extends it (the format and the rule are in that file's
header). `catalog_file.load_catalog` reads and checks it; a bad file raises CatalogError, whose
message names the file, the model and the field, and stops start-up.

An upstream model may carry its capacity (UpstreamCapacity): Google's quotas are per project (or
express-mode key) per base model, so these limits hold per provider credential for that upstream, on
top of the credential's own limits in the settings (services/capacity.py takes the tighter).

A public id resolves to a ModelSpec: a listed model's id, one of its `aliases`, or a retired model
(`replaced_by`), which keeps its own contract but is served by its replacement's upstream. The spec
always carries the id the client sent, so the operation, its events and its listing show that id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import NotRequired, TypedDict

from lunos_events.money import CURRENCY, format_amount

PROVIDERS = ("google",)
# What a model may accept beyond the reference document's fields (camelCase, as requests name them).
INPUTS = ("image", "lastFrame", "referenceImages", "video")
REFERENCE_TYPES = ("asset", "style")
OPTIONS = ("generateAudio", "enhancePrompt")
MAX_SAMPLES = 4
MAX_ID_CHARS = 128  # the width of the `model` and `provider_model` columns


class CatalogError(Exception):
    """A catalog file that cannot be used; the message names the file, and the model and field."""


class PublicModel(TypedDict):
    """A model as `GET /v1/models` lists it."""

    id: str
    provider: str
    description: str
    price_per_second: str
    price_per_second_by_resolution: NotRequired[dict[str, str]]
    currency: str
    default_duration_seconds: int
    durations: list[int]
    aspect_ratios: list[str]
    resolutions: list[str]
    person_generation: list[str]
    accepts_seed: bool
    inputs: list[str]
    reference_types: list[str]
    options: list[str]
    max_samples: int
    extension_durations: list[int]
    aliases: list[str]
    retired_at: NotRequired[str]
    replaced_by: NotRequired[str]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider_model: str
    price_per_second_cents: int
    default_duration_seconds: int
    durations: tuple[int, ...]
    aspect_ratios: tuple[str, ...] = ("16:9",)
    description: str = ""
    # Optional parameters beyond the reference document; an empty tuple means "not accepted".
    resolutions: tuple[str, ...] = ()
    person_generation: tuple[str, ...] = ()
    accepts_seed: bool = False
    # Media inputs (INPUTS), reference image types, boolean options (OPTIONS) and samples per request.
    inputs: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    max_samples: int = 1
    # durationSeconds allowed when `video` is extended (the seconds added).
    extension_durations: tuple[int, ...] = ()
    provider: str = "google"
    # (resolution, cents per second) where a resolution's price differs from price_per_second_cents.
    price_per_second_by_resolution: tuple[tuple[str, int], ...] = ()
    aliases: tuple[str, ...] = ()
    retired_at: date | None = None
    replaced_by: str | None = None

    def price_cents(self, resolution: str | None = None) -> int:
        """Cents per second; a request that names no resolution pays price_per_second_cents."""
        for name, cents in self.price_per_second_by_resolution:
            if name == resolution:
                return cents
        return self.price_per_second_cents

    def cost_cents(self, duration_seconds: int, resolution: str | None = None, samples: int = 1) -> int:
        """Price (of the resolution's tier) x seconds x samples."""
        return self.price_cents(resolution) * duration_seconds * samples

    def public_view(self) -> PublicModel:
        view: PublicModel = {
            "id": self.id,
            "provider": self.provider,
            "description": self.description,
            "price_per_second": format_amount(self.price_per_second_cents),
            "currency": CURRENCY,
            "default_duration_seconds": self.default_duration_seconds,
            "durations": list(self.durations),
            "aspect_ratios": list(self.aspect_ratios),
            "resolutions": list(self.resolutions),
            "person_generation": list(self.person_generation),
            "accepts_seed": self.accepts_seed,
            "inputs": list(self.inputs),
            "reference_types": list(self.reference_types),
            "options": list(self.options),
            "max_samples": self.max_samples,
            "extension_durations": list(self.extension_durations),
            "aliases": list(self.aliases),
        }
        if self.price_per_second_by_resolution:
            view["price_per_second_by_resolution"] = {
                name: format_amount(cents) for name, cents in self.price_per_second_by_resolution
            }
        if self.retired_at is not None:
            view["retired_at"] = self.retired_at.isoformat()
        if self.replaced_by is not None:
            view["replaced_by"] = self.replaced_by
        return view


@dataclass(frozen=True, slots=True)
class UpstreamCapacity:
    """What one provider credential may do with one upstream model; None: no catalog limit."""

    starts_per_minute: int | None = None
    max_in_flight: int | None = None


UNLIMITED = UpstreamCapacity()


@dataclass(frozen=True)
class Catalog:
    """The listed models, every public id (ids and aliases) they answer to, and the capacity of
    the upstream models that declare one."""

    models: tuple[ModelSpec, ...]
    upstreams: dict[str, UpstreamCapacity] = field(default_factory=dict, hash=False)
    _by_id: dict[str, ModelSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {m.id: m for m in self.models}
        for model in self.models:
            for alias in model.aliases:
                by_id.setdefault(alias, dataclasses.replace(model, id=alias))
        object.__setattr__(self, "_by_id", by_id)

    def get(self, model_id: str) -> ModelSpec | None:
        """The spec a public id resolves to, carrying that id; None for an unknown id."""
        return self._by_id.get(model_id)

    resolve = get

    def upstream_models(self) -> list[str]:
        """Every upstream model that serves a listed model, in catalog order."""
        return list(dict.fromkeys(m.provider_model for m in self.models))

    def capacity(self, provider_model: str) -> UpstreamCapacity:
        """The per-credential limits the catalog sets on an upstream model (UNLIMITED if none)."""
        return self.upstreams.get(provider_model, UNLIMITED)
