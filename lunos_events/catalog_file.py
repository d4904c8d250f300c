"""Reading and checking a catalog file: the shipped `catalog.toml`, or an operator's that replaces
or extends it. Every problem is a CatalogError naming the file, the model and the field."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from lunos_events.catalog import (
    INPUTS,
    MAX_ID_CHARS,
    MAX_SAMPLES,
    OPTIONS,
    PROVIDERS,
    REFERENCE_TYPES,
    Catalog,
    CatalogError,
    ModelSpec,
)

_ID = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_RATIO = re.compile(r"[1-9][0-9]*:[1-9][0-9]*")

DEFAULT_FILE = "catalog.toml"
_FIELDS = (
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
_TOP_LEVEL = ("extends_default", "models")


def default_catalog_source() -> str:
    """Where the shipped catalog is, as error messages name it."""
    return str(resources.files("lunos_events").joinpath(DEFAULT_FILE))


def default_catalog() -> Catalog:
    return load_catalog(None)


def load_catalog(path: str | Path | None) -> Catalog:
    """The shipped catalog, or it as the operator file at `path` replaces or extends it."""
    shipped = resources.files("lunos_events").joinpath(DEFAULT_FILE)
    default = _read(default_catalog_source(), shipped.read_text(encoding="utf-8"))
    if path is None:
        return _build(default.models)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"catalog {source}: the file is not UTF-8 text") from None
    except OSError as exc:
        raise CatalogError(f"catalog {source}: cannot read the file: {exc.strerror or exc}") from None
    operator = _read(source, text)
    if not operator.extends_default:
        if not operator.models:
            raise CatalogError(f"catalog {source}: defines no models ([[models]] tables)")
        return _build(operator.models)
    merged = {draft.id: draft for draft in default.models}
    merged.update((draft.id, draft) for draft in operator.models)  # same id: the operator's wins
    return _build(tuple(merged.values()))


@dataclass(frozen=True)
class _Draft:
    """One checked [[models]] entry, before the checks across models."""

    source: str
    spec: ModelSpec  # provider_model is "" until resolved for a model with replaced_by

    @property
    def id(self) -> str:
        return self.spec.id

    def fail(self, name: str, problem: str) -> NoReturn:
        raise CatalogError(f'catalog {self.source}: model "{self.id}": field "{name}": {problem}')


@dataclass(frozen=True)
class _File:
    extends_default: bool
    models: tuple[_Draft, ...]


def _read(source: str, text: str) -> _File:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog {source}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - set(_TOP_LEVEL))
    if unknown:
        raise CatalogError(
            f'catalog {source}: unknown top-level key "{unknown[0]}" (the keys are: {", ".join(_TOP_LEVEL)})'
        )
    extends = document.get("extends_default", False)
    if not isinstance(extends, bool):
        raise CatalogError(f'catalog {source}: "extends_default" must be true or false')
    entries = document.get("models", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CatalogError(f'catalog {source}: "models" must be an array of tables ([[models]])')
    drafts: list[_Draft] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        draft = _Fields(source, number, entry).draft()
        if draft.id in seen:
            draft.fail("id", "defined twice in this file")
        seen.add(draft.id)
        drafts.append(draft)
    return _File(extends, tuple(drafts))


class _Fields:
    """Reads and checks the fields of one [[models]] table."""

    def __init__(self, source: str, number: int, entry: dict[str, Any]) -> None:
        self.source = source
        self.entry = entry
        self.label = f"#{number}"

    def fail(self, name: str, problem: str) -> NoReturn:
        raise CatalogError(f'catalog {self.source}: model {self.label}: field "{name}": {problem}')

    def draft(self) -> _Draft:
        model_id = self.public_id("id", self.entry.get("id", _MISSING))
        self.label = f'"{model_id}"'
        for name in self.entry:
            if name not in _FIELDS:
                self.fail(name, f"unknown field (the fields are: {', '.join(_FIELDS)})")
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
            self.fail("default_duration", f"must be one of the durations ({_listing(durations)})")

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
        return _Draft(self.source, spec)

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
                self.fail(name, f"{resolution!r} is not one of the resolutions ({_listing(resolutions)})")
            if type(cents) is not int or cents < 0:
                self.fail(name, f"{resolution!r}: must be a whole number of cents (an integer >= 0)")
        return tuple(table.items())


_MISSING = object()


def _build(drafts: tuple[_Draft, ...]) -> Catalog:
    """The checks across models: unique public ids, replacements that exist and can serve."""
    owners: dict[str, _Draft] = {d.id: d for d in drafts}
    for draft in drafts:
        for alias in draft.spec.aliases:
            other = owners.get(alias)
            if other is not None:
                what = "the id" if other.id == alias else "an alias"
                where = "" if other.source == draft.source else f" (in catalog {other.source})"
                draft.fail("aliases", f'"{alias}" is already {what} of model "{other.id}"{where}')
            owners[alias] = draft
    by_id = {d.id: d for d in drafts}
    specs = []
    for draft in drafts:
        spec = draft.spec
        if spec.replaced_by is not None:
            target = _replacement(draft, by_id)
            _check_served_by(draft, target)
            spec = dataclasses.replace(spec, provider_model=target.spec.provider_model)
        specs.append(spec)
    return Catalog(tuple(specs))


def _replacement(draft: _Draft, by_id: dict[str, _Draft]) -> _Draft:
    """The model at the end of the replaced_by chain: the one whose upstream serves `draft`."""
    chain = [draft.id]
    current = draft
    while current.spec.replaced_by is not None:
        target = by_id.get(current.spec.replaced_by)
        if target is None:
            current.fail(
                "replaced_by", f'"{current.spec.replaced_by}" is not the id of a model in the catalog'
            )
        if target.id in chain:
            draft.fail("replaced_by", f"forms a cycle ({' -> '.join([*chain, target.id])})")
        chain.append(target.id)
        current = target
    return current


def _check_served_by(draft: _Draft, target: _Draft) -> None:
    """What the retired model accepts must be something its replacement's upstream accepts."""
    old, new = draft.spec, target.spec
    # In an extension, the replacement may come from the other file: say which.
    where = "" if target.source == draft.source else f" (in catalog {target.source})"
    if old.provider != new.provider:
        draft.fail("replaced_by", f'"{new.id}"{where} is a {new.provider} model, this one is {old.provider}')
    if old.accepts_seed and not new.accepts_seed:
        draft.fail("accepts_seed", f'true, but its replacement "{new.id}"{where} accepts no seed')
    contract: tuple[tuple[str, tuple[object, ...], tuple[object, ...]], ...] = (
        ("durations", old.durations, new.durations),
        ("aspect_ratios", old.aspect_ratios, new.aspect_ratios),
        ("resolutions", old.resolutions, new.resolutions),
        ("person_generation", old.person_generation, new.person_generation),
        ("inputs", old.inputs, new.inputs),
        ("reference_types", old.reference_types, new.reference_types),
        ("options", old.options, new.options),
        ("extension_durations", old.extension_durations, new.extension_durations),
    )
    for name, values, allowed in contract:
        for value in values:
            if value not in allowed:
                problem = f'{value!r} is not served by its replacement "{new.id}"{where}'
                draft.fail(name, f"{problem}, which allows {_listing(allowed)}")
    if old.max_samples > new.max_samples:
        problem = f'{old.max_samples}, but its replacement "{new.id}"{where} allows {new.max_samples}'
        draft.fail("max_samples", problem)


def _listing(values: Any) -> str:
    return ", ".join(str(v) for v in values) or "none"
