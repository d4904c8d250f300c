"""Reading and checking a catalog file: the shipped `catalog.toml`, or an operator's that replaces
or extends it. Every problem is a CatalogError naming the file, the model and the field."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from lunos_events.catalog import Catalog, CatalogError, UpstreamCapacity
from lunos_events.catalog_entries import Draft, listing, read_model

DEFAULT_FILE = "catalog.toml"
_TOP_LEVEL = ("extends_default", "models", "upstreams")
_UPSTREAM_FIELDS = ("starts_per_minute", "max_in_flight")


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
        return _build(default.models, default.upstreams)
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
        return _build(operator.models, operator.upstreams)
    merged = {draft.id: draft for draft in default.models}
    merged.update((draft.id, draft) for draft in operator.models)  # same id: the operator's wins
    upstreams = {u.name: u for u in default.upstreams}
    upstreams.update((u.name, u) for u in operator.upstreams)  # a whole section, as for models
    return _build(tuple(merged.values()), tuple(upstreams.values()))


@dataclass(frozen=True)
class _Upstream:
    """One checked [upstreams."<upstream model>"] table."""

    source: str
    name: str
    capacity: UpstreamCapacity


@dataclass(frozen=True)
class _File:
    extends_default: bool
    models: tuple[Draft, ...]
    upstreams: tuple[_Upstream, ...]


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
    drafts: list[Draft] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        draft = read_model(source, number, entry)
        if draft.id in seen:
            draft.fail("id", "defined twice in this file")
        seen.add(draft.id)
        drafts.append(draft)
    sections = document.get("upstreams", {})
    if not isinstance(sections, dict) or not all(isinstance(s, dict) for s in sections.values()):
        raise CatalogError(
            f'catalog {source}: "upstreams" must be a table of tables ([upstreams."<upstream model>"])'
        )
    upstreams = tuple(_upstream(source, name, table) for name, table in sections.items())
    return _File(extends, tuple(drafts), upstreams)


def _upstream(source: str, name: str, table: dict[str, Any]) -> _Upstream:
    fields = ", ".join(_UPSTREAM_FIELDS)

    def fail(problem: str) -> NoReturn:
        raise CatalogError(f'catalog {source}: upstream "{name}": {problem}')

    if not table:
        fail(f"sets no limit (the fields are: {fields})")
    for key, value in table.items():
        if key not in _UPSTREAM_FIELDS:
            fail(f'unknown field "{key}" (the fields are: {fields})')
        # bool is an int to Python, not a count to an operator.
        if type(value) is not int or value < 1:
            fail(f'field "{key}": must be an integer >= 1, per credential (leave it out for no limit)')
    return _Upstream(source, name, UpstreamCapacity(**table))


def _build(drafts: tuple[Draft, ...], upstreams: tuple[_Upstream, ...]) -> Catalog:
    """The checks across models: unique public ids, replacements that exist and can serve, and
    capacity only for upstream models that serve one (a misspelt name would limit nothing)."""
    owners: dict[str, Draft] = {d.id: d for d in drafts}
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
    served = list(dict.fromkeys(spec.provider_model for spec in specs))
    for upstream in upstreams:
        if upstream.name not in served:
            raise CatalogError(
                f'catalog {upstream.source}: upstream "{upstream.name}": no model in the catalog is '
                f"served by it (the upstream models are: {listing(served)})"
            )
    return Catalog(tuple(specs), {u.name: u.capacity for u in upstreams})


def _replacement(draft: Draft, by_id: dict[str, Draft]) -> Draft:
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


def _check_served_by(draft: Draft, target: Draft) -> None:
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
                draft.fail(name, f"{problem}, which allows {listing(allowed)}")
    if old.max_samples > new.max_samples:
        problem = f'{old.max_samples}, but its replacement "{new.id}"{where} allows {new.max_samples}'
        draft.fail("max_samples", problem)
