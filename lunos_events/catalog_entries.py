"""One [[models]] table of a catalog file, read and checked field by field into a ModelSpec."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NoReturn

from lunos_events.catalog import (
    INPUTS,
    MAX_ID_CHARS,
    MAX_SAMPLES,
    OPTIONS,
    PROVIDERS,
    REFERENCE_TYPES,
    CatalogError,
    ModelSpec,
)

_ID = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_RATIO = re.compile(r"[1-9][0-9]*:[1-9][0-9]*")
FIELDS = (  # of a [[models]] table
    "id",
    "provider",
    "upstream",
    "price_per_second",
    "price_per_second_by_resolution",
    "durations",
    "default_duration",
    "aspect_ratios",
    "resolutions",
    "person_generation",
    "accepts_seed",
    "inputs",
    "reference_types",
    "options",
    "max_samples",
    "extension_durations",
    "description",
    "aliases",
    "retired_at",
    "replaced_by",
)


@dataclass(frozen=True)
class Draft:
    """One checked [[models]] entry, before the checks across models."""

    source: str
    spec: ModelSpec  # provider_model is "" until resolved for a model with replaced_by

    @property
    def id(self) -> str:
        return self.spec.id

    def fail(self, name: str, problem: str) -> NoReturn:
        raise CatalogError(f'catalog {self.source}: model "{self.id}": field "{name}": {problem}')


def read_model(source: str, number: int, entry: dict[str, Any]) -> Draft:
    """The `number`th [[models]] table of `source`, checked."""
    return _Fields(source, number, entry).draft()


class _Fields:
    """Reads and checks the fields of one [[models]] table."""

    def __init__(self, source: str, number: int, entry: dict[str, Any]) -> None:
        self.source = source
        self.entry = entry
        self.label = f"#{number}"

    def fail(self, name: str, problem: str) -> NoReturn:
        raise CatalogError(f'catalog {self.source}: model {self.label}: field "{name}": {problem}')

    def draft(self) -> Draft:
        model_id = self.public_id("id", self.entry.get("id", _MISSING))
        self.label = f'"{model_id}"'
        for name in self.entry:
            if name not in FIELDS:
                self.fail(name, f"unknown field (the fields are: {', '.join(FIELDS)})")
        provider = self.required("provider")
        if provider not in PROVIDERS:
            self.fail("provider", f"must be one of: {', '.join(PROVIDERS)} (not {provider!r})")
        replaced_by = self.optional("replaced_by")
        if replaced_by is not None:
            replaced_by = self.public_id("replaced_by", replaced_by)
            if replaced_by == model_id:
                self.fail("replaced_by", "names the model itself")
        if "upstream" in self.entry and replaced_by is not None:
            self.fail("upstream", "must not be set with replaced_by (the replacement's upstream serves it)")
        upstream = "" if replaced_by is not None else self.public_id("upstream", self.required("upstream"))

        durations = self.required("durations")
        if (
            not isinstance(durations, list)
            or not durations
            or not all(type(d) is int and d > 0 for d in durations)
        ):
            self.fail("durations", "must be a non-empty list of positive integers")
        self.unique("durations", durations)
        default_duration = self.required("default_duration")
        if type(default_duration) is not int or default_duration not in durations:
            self.fail("default_duration", f"must be one of the durations ({listing(durations)})")

        aspect_ratios = self.texts("aspect_ratios", self.required("aspect_ratios"), non_empty=True)
        for ratio in aspect_ratios:
            if not _RATIO.fullmatch(ratio):
                self.fail("aspect_ratios", f'{ratio!r} is not a ratio like "16:9"')
        resolutions = self.texts("resolutions", self.optional("resolutions", []))
        prices = self.prices(resolutions)
        retired_at = self.optional("retired_at")
        if retired_at is not None and (not isinstance(retired_at, date) or isinstance(retired_at, datetime)):
            self.fail("retired_at", "must be a date like 2026-06-30 (unquoted)")
        accepts_seed = self.optional("accepts_seed", False)
        if not isinstance(accepts_seed, bool):
            self.fail("accepts_seed", "must be true or false")
        inputs = self.choices("inputs", INPUTS)
        reference_types = self.choices("reference_types", REFERENCE_TYPES)
        if ("referenceImages" in inputs) != bool(reference_types):
            self.fail(
                "reference_types", 'must list the accepted types exactly when inputs has "referenceImages"'
            )
        max_samples = self.optional("max_samples", 1)
        if type(max_samples) is not int or not 1 <= max_samples <= MAX_SAMPLES:
            self.fail("max_samples", f"must be an integer from 1 to {MAX_SAMPLES}")
        extension_durations = self.optional("extension_durations", [])
        if not isinstance(extension_durations, list) or not all(
            type(d) is int and d > 0 for d in extension_durations
        ):
            self.fail("extension_durations", "must be a list of positive integers")
        self.unique("extension_durations", extension_durations)
        if ("video" in inputs) != bool(extension_durations):
            self.fail("extension_durations", 'must be non-empty exactly when inputs has "video"')
        aliases = tuple(
            self.public_id("aliases", a) for a in self.texts("aliases", self.optional("aliases", []))
        )
        if model_id in aliases:
            self.fail("aliases", "lists the model's own id")

        spec = ModelSpec(
            id=model_id,
            provider_model=upstream,
            price_per_second_cents=self.cents("price_per_second", self.required("price_per_second")),
            default_duration_seconds=default_duration,
            durations=tuple(durations),
            aspect_ratios=aspect_ratios,
            description=self.text("description", self.optional("description", ""), empty=True),
            resolutions=resolutions,
            person_generation=self.texts("person_generation", self.optional("person_generation", [])),
            accepts_seed=accepts_seed,
            inputs=inputs,
            reference_types=reference_types,
            options=self.choices("options", OPTIONS),
            max_samples=max_samples,
            extension_durations=tuple(extension_durations),
            provider=provider,
            price_per_second_by_resolution=prices,
            aliases=aliases,
            retired_at=retired_at,
            replaced_by=replaced_by,
        )
        return Draft(self.source, spec)

    def required(self, name: str) -> Any:
        if name not in self.entry:
            self.fail(name, "is required")
        return self.entry[name]

    def optional(self, name: str, default: Any = None) -> Any:
        return self.entry.get(name, default)

    def text(self, name: str, value: Any, *, empty: bool = False) -> str:
        if not isinstance(value, str) or not (empty or value.strip()):
            self.fail(name, "must be a string" if empty else "must be a non-empty string")
        return value

    def public_id(self, name: str, value: Any) -> str:
        if value is _MISSING:
            self.fail(name, "is required")
        if not isinstance(value, str) or not _ID.fullmatch(value) or len(value) > MAX_ID_CHARS:
            problem = f"must be a non-empty string of at most {MAX_ID_CHARS} characters without spaces"
            self.fail(name, f"{problem} (not {value!r})" if name == "aliases" else problem)
        return value

    def texts(self, name: str, value: Any, *, non_empty: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(name, "must be a list of non-empty strings")
        if non_empty and not value:
            self.fail(name, "must be a non-empty list of strings")
        self.unique(name, value)
        return tuple(value)

    def choices(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        values = self.texts(name, self.optional(name, []))
        for value in values:
            if value not in allowed:
                self.fail(name, f"{value!r} is not one of: {', '.join(allowed)}")
        return values

    def unique(self, name: str, values: list[Any]) -> None:
        for i, value in enumerate(values):
            if value in values[:i]:
                self.fail(name, f"lists {value!r} twice")

    def cents(self, name: str, value: Any) -> int:
        if type(value) is not int or value < 0:
            self.fail(name, "must be a whole number of cents (an integer >= 0)")
        return value

    def prices(self, resolutions: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
        name = "price_per_second_by_resolution"
        table = self.optional(name, {})
        if not isinstance(table, dict):
            self.fail(name, 'must be a table of cents by resolution, e.g. { "1080p" = 40 }')
        for resolution, cents in table.items():
            if resolution not in resolutions:
                self.fail(name, f"{resolution!r} is not one of the resolutions ({listing(resolutions)})")
            if type(cents) is not int or cents < 0:
                self.fail(name, f"{resolution!r}: must be a whole number of cents (an integer >= 0)")
        return tuple(table.items())


_MISSING = object()


def listing(values: Any) -> str:
    return ", ".join(str(v) for v in values) or "none"
