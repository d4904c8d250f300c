"""The model catalog as data: the shipped TOML, LUNOS_CATALOG, aliases and retired Veo models."""

from __future__ import annotations

import json
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from lunos_events.catalog import CatalogError, ModelSpec
from lunos_events.catalog_file import default_catalog, default_catalog_source, load_catalog
from lunos_events.runtime import Runtime
from lunos_events.services.accounts import get_account
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.store.models import Operation
from tests.conftest import VEO, auth, create_user
from tests.fake_google import API_KEY, FakeGoogle, FakeGoogleServer
from tests.helpers import generation_body, wait_for_status
from tests.processes import PROJECT_ROOT, run, settings_env

pytestmark = pytest.mark.anyio

PEOPLE = ("allow_adult", "dont_allow")
# What every public id accepted before the catalog became data, and its price in cents per second.
# (price, durations, default duration, aspect ratios, resolutions)
BEFORE: dict[str, tuple[int, tuple[int, ...], int, tuple[str, ...], tuple[str, ...]]] = {
    "google/veo-3.0-generate-preview": (40, (8,), 8, ("16:9",), ("720p",)),
    "google/veo-3.0-generate-001": (40, (4, 6, 8), 8, ("16:9", "9:16"), ("720p", "1080p")),
    "google/veo-3.0-fast-generate-001": (15, (4, 6, 8), 8, ("16:9", "9:16"), ("720p", "1080p")),
    "google/veo-3.1-generate-001": (40, (4, 6, 8), 8, ("16:9", "9:16"), ("720p", "1080p")),
    "google/veo-3.1-fast-generate-001": (15, (4, 6, 8), 8, ("16:9", "9:16"), ("720p", "1080p")),
}
UPSTREAM = {
    "google/veo-3.0-generate-preview": "veo-3.1-generate-001",
    "google/veo-3.0-generate-001": "veo-3.1-generate-001",
    "google/veo-3.0-fast-generate-001": "veo-3.1-fast-generate-001",
    "google/veo-3.1-generate-001": "veo-3.1-generate-001",
    "google/veo-3.1-fast-generate-001": "veo-3.1-fast-generate-001",
}


# -- Writing catalog files ---------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def model(model_id: str = "acme/clip", **fields: Any) -> dict[str, Any]:
    """A valid [[models]] entry; a field set to None is left out."""
    entry: dict[str, Any] = {
        "id": model_id,
        "provider": "google",
        "upstream": "veo-3.1-fast-generate-001",
        "price_per_second": 10,
        "durations": [4, 8],
        "default_duration": 8,
        "aspect_ratios": ["16:9"],
        **fields,
    }
    return {k: v for k, v in entry.items() if v is not None}


def catalog_text(*models: dict[str, Any], **top: Any) -> str:
    lines = [f"{key} = {toml_value(value)}" for key, value in top.items()]
    for entry in models:
        lines += ["", "[[models]]", *(f"{k} = {toml_value(v)}" for k, v in entry.items())]
    return "\n".join(lines) + "\n"


def write_catalog(tmp_path: Path, *models: dict[str, Any], name: str = "catalog.toml", **top: Any) -> Path:
    path = tmp_path / name
    path.write_text(catalog_text(*models, **top))
    return path


@asynccontextmanager
async def serving(
    settings: Settings, **overrides: object
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    configured = settings.model_copy(update=overrides)
    async with (
        running_service(configured) as rt,
        httpx.AsyncClient(base_url=configured.resolved_public_base_url(), timeout=30) as client,
    ):
        yield rt, client


async def stored(rt: Runtime, op_id: str) -> Any:
    """The stored operation row (its columns as attributes)."""
    async with rt.store.reading() as conn:
        return (await conn.execute(select(Operation).where(Operation.id == op_id))).one()


async def balance_cents(rt: Runtime, account_id: str) -> int:
    return (await get_account(rt.store, account_id)).balance_cents


async def submit(client: httpx.AsyncClient, key: str, model_id: str, **parameters: Any) -> httpx.Response:
    body = {"model": model_id, "prompt": "a lighthouse at dawn", "parameters": parameters}
    return await client.post("/v1/video/generations", headers=auth(key), json=body)


# -- The shipped catalog -----------------------------------------------------------------------------


def test_the_shipped_file_loads_and_is_package_data() -> None:
    shipped = resources.files("lunos_events").joinpath("catalog.toml")
    assert shipped.is_file()
    assert default_catalog_source().endswith("catalog.toml")
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert "catalog.toml" in pyproject["tool"]["setuptools"]["package-data"]["lunos_events"]

    catalog = load_catalog(None)
    assert [m.id for m in catalog.models] == list(BEFORE)
    assert default_catalog().models == catalog.models  # the default catalog is the shipped file
    live = {m.id for m in catalog.models if m.replaced_by is None}
    assert live == {"google/veo-3.1-generate-001", "google/veo-3.1-fast-generate-001"}
    retired = {m.id: (m.retired_at, m.replaced_by) for m in catalog.models if m.retired_at}
    assert retired == {
        "google/veo-3.0-generate-preview": (date(2026, 4, 2), "google/veo-3.1-generate-001"),
        "google/veo-3.0-generate-001": (date(2026, 6, 30), "google/veo-3.1-generate-001"),
        "google/veo-3.0-fast-generate-001": (date(2026, 6, 30), "google/veo-3.1-fast-generate-001"),
    }


def test_every_old_id_keeps_its_contract_and_price_and_is_served_by_veo_3_1() -> None:
    catalog = load_catalog(None)
    for model_id, (cents, durations, default, ratios, resolutions) in BEFORE.items():
        spec = catalog.get(model_id)
        assert spec is not None, model_id
        assert spec.id == model_id
        assert spec.provider_model == UPSTREAM[model_id]
        assert (spec.price_per_second_cents, spec.durations, spec.default_duration_seconds) == (
            cents,
            durations,
            default,
        )
        assert (spec.aspect_ratios, spec.resolutions, spec.person_generation) == (ratios, resolutions, PEOPLE)
        assert spec.accepts_seed is True
        for duration in durations:
            for resolution in (None, *resolutions):
                assert spec.cost_cents(duration, resolution) == cents * duration


async def test_old_ids_are_accepted_at_the_same_cost(service, client) -> None:
    key = await create_user(service, "old-ids", "100.00")
    spent = 0
    cases = [
        ("google/veo-3.0-generate-preview", {}, 8 * 40),
        ("google/veo-3.0-generate-preview", {"durationSeconds": 8, "resolution": "720p", "seed": 7}, 8 * 40),
        ("google/veo-3.0-generate-001", {"durationSeconds": 4, "resolution": "1080p"}, 4 * 40),
        ("google/veo-3.0-generate-001", {"aspectRatio": "9:16", "durationSeconds": 6}, 6 * 40),
        ("google/veo-3.0-fast-generate-001", {"durationSeconds": 6}, 6 * 15),
        ("google/veo-3.0-fast-generate-001", {}, 8 * 15),
        ("google/veo-3.1-generate-001", {"resolution": "1080p"}, 8 * 40),
        ("google/veo-3.1-fast-generate-001", {"durationSeconds": 4}, 4 * 15),
    ]
    for model_id, parameters, cost in cases:
        response = await submit(client, key, model_id, **parameters)
        assert response.status_code == 200, (model_id, response.text)
        row = await stored(service, response.json()["id"])
        assert (row.model, row.provider_model, row.cost_cents) == (model_id, UPSTREAM[model_id], cost)
        spent += cost
        assert await balance_cents(service, "old-ids") == 10_000 - spent
    # What the preview id refused before, it still refuses (its replacement would allow it).
    for parameters in ({"durationSeconds": 4}, {"resolution": "1080p"}, {"aspectRatio": "9:16"}):
        assert (await submit(client, key, VEO, **parameters)).status_code == 400


async def test_retired_id_keeps_the_asked_id_while_served_by_veo_3_1(service, client) -> None:
    key = await create_user(service, "retired", "10.00")
    response = await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    assert response.status_code == 200, response.text
    submitted = response.json()
    # The local simulator names its operations after the upstream model it was asked for.
    assert submitted["operation_name"].startswith("operations/veo-3.1-generate-001/")
    final = await wait_for_status(client, submitted["id"], auth(key))
    assert final["status"] == "completed"
    listed = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]
    assert [(op["id"], op["model"]) for op in listed] == [(submitted["id"], VEO)]
    row = await stored(service, submitted["id"])
    assert (row.model, row.provider_model) == (VEO, "veo-3.1-generate-001")


async def test_models_lists_capabilities_aliases_and_retirement(service, client) -> None:
    models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    assert list(models) == list(BEFORE)
    preview = models[VEO]
    assert preview == {
        "id": VEO,
        "provider": "google",
        "description": preview["description"],
        "price_per_second": "0.40",
        "currency": "USD",
        "default_duration_seconds": 8,
        "durations": [8],
        "aspect_ratios": ["16:9"],
        "resolutions": ["720p"],
        "person_generation": list(PEOPLE),
        "accepts_seed": True,
        "inputs": ["image"],
        "reference_types": [],
        "options": ["generateAudio", "enhancePrompt"],
        "max_samples": 4,
        "extension_durations": [],
        "aliases": [],
        "retired_at": "2026-04-02",
        "replaced_by": "google/veo-3.1-generate-001",
        # The simulator's latency until a run was observed; nothing queued yet.
        "queue": {"depth": 0, "typical_wait_seconds": 0.0, "typical_run_seconds": 0.3},
    }
    assert models["google/veo-3.0-fast-generate-001"]["replaced_by"] == "google/veo-3.1-fast-generate-001"
    live = models["google/veo-3.1-generate-001"]
    assert "retired_at" not in live and "replaced_by" not in live and live["aliases"] == []
    assert "upstream" not in live and "provider_model" not in live  # upstream ids are not public
    assert live["inputs"] == ["image", "lastFrame", "referenceImages", "video"]
    assert (live["reference_types"], live["extension_durations"]) == (["asset"], [7])


# -- LUNOS_CATALOG -----------------------------------------------------------------------------------


async def test_an_operator_catalog_replaces_the_default(settings, tmp_path) -> None:
    path = write_catalog(tmp_path, model("acme/clip", description="House model"))
    async with serving(settings, catalog=path) as (rt, client):
        models = (await client.get("/v1/models")).json()["data"]
        assert [m["id"] for m in models] == ["acme/clip"]
        key = await create_user(rt, "acme", "10.00")
        response = await submit(client, key, "acme/clip", durationSeconds=4)
        assert response.status_code == 200, response.text
        row = await stored(rt, response.json()["id"])
        assert (row.model, row.provider_model, row.cost_cents) == (
            "acme/clip",
            "veo-3.1-fast-generate-001",
            40,
        )
        missing = await submit(client, key, VEO)
        assert (missing.status_code, missing.json()) == (404, {"error": "Model not found"})


async def test_an_operator_catalog_extends_the_default_by_id(settings, tmp_path) -> None:
    house = model(
        "google/veo-3.1-generate-001",
        upstream="veo-3.1-generate-001",
        price_per_second=40,
        price_per_second_by_resolution={"720p": 40, "1080p": 50},
        durations=[4, 6, 8],
        aspect_ratios=["16:9", "9:16"],
        resolutions=["720p", "1080p"],
        person_generation=list(PEOPLE),
        accepts_seed=True,
        # What the retired 3.0 ids it serves accept, it must accept too.
        inputs=["image"],
        options=["generateAudio", "enhancePrompt"],
        max_samples=4,
        aliases=["acme/house", "acme/default"],
    )
    path = write_catalog(tmp_path, house, model("acme/new", aliases=["acme/newest"]), extends_default=True)
    async with serving(settings, catalog=path) as (rt, client):
        models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
        assert list(models) == [*BEFORE, "acme/new"]
        listed = models["google/veo-3.1-generate-001"]
        assert listed["aliases"] == ["acme/house", "acme/default"]
        assert listed["price_per_second_by_resolution"] == {"720p": "0.40", "1080p": "0.50"}
        assert models["google/veo-3.0-generate-001"]["price_per_second"] == "0.40"  # untouched

        key = await create_user(rt, "acme", "20.00")
        for model_id, parameters, upstream, cost in [
            ("acme/house", {"durationSeconds": 4, "resolution": "1080p"}, "veo-3.1-generate-001", 200),
            ("acme/house", {"durationSeconds": 4, "resolution": "720p"}, "veo-3.1-generate-001", 160),
            ("acme/default", {"durationSeconds": 4}, "veo-3.1-generate-001", 160),
            ("acme/new", {}, "veo-3.1-fast-generate-001", 80),
            (VEO, {}, "veo-3.1-generate-001", 320),  # the retired id still reaches the (new) 3.1 entry
        ]:
            response = await submit(client, key, model_id, **parameters)
            assert response.status_code == 200, (model_id, response.text)
            op_id = response.json()["id"]
            row = await stored(rt, op_id)
            assert (row.model, row.provider_model, row.cost_cents) == (model_id, upstream, cost)
            final = await wait_for_status(client, op_id, auth(key))
            assert final["status"] == "completed"
        history = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]
        assert [op["model"] for op in history][::-1] == [
            "acme/house",
            "acme/house",
            "acme/default",
            "acme/new",
            VEO,
        ]
        # An alias has its model's whole contract, and its errors name the id the client sent.
        refused = await submit(client, key, "acme/house", durationSeconds=5)
        assert refused.status_code == 400
        assert "this model allows 4, 6, 8" in refused.json()["error"]
        refused = await submit(client, key, "acme/newest", seed=1)
        assert refused.json() == {"error": "Model acme/newest does not accept 'seed'"}


def test_an_alias_resolves_to_a_spec_carrying_the_asked_id(tmp_path) -> None:
    path = write_catalog(tmp_path, model("acme/clip", aliases=["acme/old-clip"]))
    catalog = load_catalog(path)
    spec = catalog.resolve("acme/old-clip")
    assert isinstance(spec, ModelSpec)
    assert (spec.id, spec.provider_model, spec.durations) == (
        "acme/old-clip",
        "veo-3.1-fast-generate-001",
        (4, 8),
    )
    assert catalog.get("acme/clip") is catalog.models[0]
    assert catalog.get("acme/unknown") is None
    assert [m.id for m in catalog.models] == ["acme/clip"]  # aliases are not listed on their own


def test_replaced_by_chains_are_followed(tmp_path) -> None:
    path = write_catalog(
        tmp_path,
        model("acme/v1", upstream=None, replaced_by="acme/v2"),
        model("acme/v2", upstream=None, replaced_by="acme/v3", retired_at=date(2027, 1, 1)),
        model("acme/v3", upstream="veo-9"),
    )
    catalog = load_catalog(path)
    assert {m.id: m.provider_model for m in catalog.models} == {
        "acme/v1": "veo-9",
        "acme/v2": "veo-9",
        "acme/v3": "veo-9",
    }


# -- Bad catalog files -------------------------------------------------------------------------------


def _retired(**fields: Any) -> dict[str, Any]:
    return model("acme/old", upstream=None, replaced_by="acme/clip", **fields)


BAD_FILES: list[tuple[str, str, str]] = [
    # (catalog text, model label, field and problem)
    (
        catalog_text(model("google/x", durations=[])),
        '"google/x"',
        'field "durations": must be a non-empty list of positive integers',
    ),
    (
        catalog_text(model("google/x", durations=[4, "8"])),
        '"google/x"',
        'field "durations": must be a non-empty list of positive integers',
    ),
    (
        catalog_text(model("google/x", durations=[0])),
        '"google/x"',
        'field "durations": must be a non-empty list of positive integers',
    ),
    (
        catalog_text(model("google/x", durations=[4, 4])),
        '"google/x"',
        'field "durations": lists 4 twice',
    ),
    (
        catalog_text(model("google/x", default_duration=6)),
        '"google/x"',
        'field "default_duration": must be one of the durations (4, 8)',
    ),
    (
        catalog_text(model("google/x", price_per_second=None)),
        '"google/x"',
        'field "price_per_second": is required',
    ),
    (
        catalog_text(model("google/x", price_per_second="0.40")),
        '"google/x"',
        'field "price_per_second": must be a whole number of cents',
    ),
    (catalog_text(model("google/x", provider=None)), '"google/x"', 'field "provider": is required'),
    (
        catalog_text(model("google/x", provider="openai")),
        '"google/x"',
        "field \"provider\": must be one of: google (not 'openai')",
    ),
    (catalog_text(model("google/x", upstream=None)), '"google/x"', 'field "upstream": is required'),
    (
        catalog_text(model("google/x", aspect_ratios=[])),
        '"google/x"',
        'field "aspect_ratios": must be a non-empty list of strings',
    ),
    (
        catalog_text(model("google/x", aspect_ratios=["wide"])),
        '"google/x"',
        'field "aspect_ratios": \'wide\' is not a ratio like "16:9"',
    ),
    (
        catalog_text(model("google/x", accepts_seed="yes")),
        '"google/x"',
        'field "accepts_seed": must be true or false',
    ),
    (
        catalog_text(model("google/x", duration=8)),
        '"google/x"',
        'field "duration": unknown field (the fields are: id, provider, upstream,',
    ),
    (
        catalog_text(model("google/x", retired_at="2026-06-30")),
        '"google/x"',
        'field "retired_at": must be a date like 2026-06-30 (unquoted)',
    ),
    (
        catalog_text(model("google/x", resolutions=["720p"], price_per_second_by_resolution={"4k": 60})),
        '"google/x"',
        "field \"price_per_second_by_resolution\": '4k' is not one of the resolutions (720p)",
    ),
    (catalog_text(model(None)), "#1", 'field "id": is required'),
    (
        catalog_text(model("acme/clip"), model("google/has space")),
        "#2",
        'field "id": must be a non-empty string of at most 128 characters without spaces',
    ),
    (
        catalog_text(model("acme/clip"), model("acme/clip")),
        '"acme/clip"',
        'field "id": defined twice in this file',
    ),
    (
        catalog_text(model("acme/clip"), model("acme/other", aliases=["acme/clip"])),
        '"acme/other"',
        'field "aliases": "acme/clip" is already the id of model "acme/clip"',
    ),
    (
        catalog_text(model("acme/clip", aliases=["acme/x"]), model("acme/other", aliases=["acme/x"])),
        '"acme/other"',
        'field "aliases": "acme/x" is already an alias of model "acme/clip"',
    ),
    (
        catalog_text(model("acme/clip", aliases=["acme/clip"])),
        '"acme/clip"',
        'field "aliases": lists the model\'s own id',
    ),
    (
        catalog_text(model("acme/old", upstream=None, replaced_by="acme/gone")),
        '"acme/old"',
        'field "replaced_by": "acme/gone" is not the id of a model in the catalog',
    ),
    (
        catalog_text(
            model("acme/a", upstream=None, replaced_by="acme/b"),
            model("acme/b", upstream=None, replaced_by="acme/a"),
        ),
        '"acme/a"',
        'field "replaced_by": forms a cycle (acme/a -> acme/b -> acme/a)',
    ),
    (
        catalog_text(model("acme/old", replaced_by="acme/clip"), model("acme/clip")),
        '"acme/old"',
        'field "upstream": must not be set with replaced_by',
    ),
    (
        catalog_text(_retired(durations=[4, 5], default_duration=4), model("acme/clip")),
        '"acme/old"',
        'field "durations": 5 is not served by its replacement "acme/clip", which allows 4, 8',
    ),
    (
        catalog_text(_retired(resolutions=["1080p"]), model("acme/clip", resolutions=["720p"])),
        '"acme/old"',
        'field "resolutions": \'1080p\' is not served by its replacement "acme/clip", which allows 720p',
    ),
    (
        catalog_text(_retired(accepts_seed=True), model("acme/clip")),
        '"acme/old"',
        'field "accepts_seed": true, but its replacement "acme/clip" accepts no seed',
    ),
    (
        catalog_text(model("google/x", inputs=["image", "audio"])),
        '"google/x"',
        "field \"inputs\": 'audio' is not one of: image, lastFrame, referenceImages, video",
    ),
    (
        catalog_text(model("google/x", inputs=["referenceImages"])),
        '"google/x"',
        'field "reference_types": must list the accepted types exactly when inputs has "referenceImages"',
    ),
    (
        catalog_text(model("google/x", reference_types=["asset"])),
        '"google/x"',
        'field "reference_types": must list the accepted types exactly when inputs has "referenceImages"',
    ),
    (
        catalog_text(model("google/x", inputs=["referenceImages"], reference_types=["mood"])),
        '"google/x"',
        "field \"reference_types\": 'mood' is not one of: asset, style",
    ),
    (
        catalog_text(model("google/x", options=["generateAudio", "loud"])),
        '"google/x"',
        "field \"options\": 'loud' is not one of: generateAudio, enhancePrompt",
    ),
    (
        catalog_text(model("google/x", max_samples=5)),
        '"google/x"',
        'field "max_samples": must be an integer from 1 to 4',
    ),
    (
        catalog_text(model("google/x", inputs=["video"])),
        '"google/x"',
        'field "extension_durations": must be non-empty exactly when inputs has "video"',
    ),
    (
        catalog_text(model("google/x", extension_durations=[0])),
        '"google/x"',
        'field "extension_durations": must be a list of positive integers',
    ),
    (
        catalog_text(_retired(inputs=["lastFrame"]), model("acme/clip", inputs=["image"])),
        '"acme/old"',
        'field "inputs": \'lastFrame\' is not served by its replacement "acme/clip", which allows image',
    ),
    (
        catalog_text(_retired(max_samples=4), model("acme/clip", max_samples=2)),
        '"acme/old"',
        'field "max_samples": 4, but its replacement "acme/clip" allows 2',
    ),
]


@pytest.mark.parametrize(("text", "label", "problem"), BAD_FILES)
def test_a_bad_model_names_the_file_the_model_and_the_field(tmp_path, text, label, problem) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"catalog {path}: model {label}: {problem}"), str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[models]\nid = 1\n", "not valid TOML: "),
        ("", "defines no models ([[models]] tables)"),
        ("extends_default = false\n", "defines no models"),
        ('extends_default = "yes"\n', '"extends_default" must be true or false'),
        ("models = 3\n", '"models" must be an array of tables ([[models]])'),
        ("[models]\nid = 'x'\n", '"models" must be an array of tables'),
        ("extend_default = true\n", 'unknown top-level key "extend_default"'),
    ],
)
def test_a_bad_file_names_the_file_and_the_problem(tmp_path, text, problem) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"catalog {path}: {problem}"), str(caught.value)


def test_an_unreadable_file_is_named(tmp_path) -> None:
    with pytest.raises(CatalogError, match=r"catalog .*missing\.toml: cannot read the file: No such file"):
        load_catalog(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CatalogError, match=r"binary\.toml: the file is not UTF-8 text"):
        load_catalog(binary)


def test_an_extension_is_checked_against_the_default(tmp_path) -> None:
    path = write_catalog(tmp_path, model("acme/clip", aliases=[VEO]), extends_default=True)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value) == (
        f'catalog {path}: model "acme/clip": field "aliases": "{VEO}" is already the id of model '
        f'"{VEO}" (in catalog {default_catalog_source()})'
    )
    # Replacing the 3.1 entry with one the retired 3.0 ids no longer fit within is refused, by name.
    narrow = model(
        "google/veo-3.1-generate-001",
        upstream="veo-3.1-generate-001",
        durations=[4],
        default_duration=4,
        resolutions=["720p"],
        person_generation=list(PEOPLE),
        accepts_seed=True,
    )
    path = write_catalog(tmp_path, narrow, name="narrow.toml", extends_default=True)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value) == (
        f'catalog {default_catalog_source()}: model "{VEO}": field "durations": 8 is not served by its '
        f'replacement "google/veo-3.1-generate-001" (in catalog {path}), which allows 4'
    )


async def test_a_bad_catalog_stops_an_in_process_start(settings, tmp_path) -> None:
    path = write_catalog(tmp_path, model("google/x", durations=[]))
    with pytest.raises(CatalogError, match='model "google/x": field "durations"'):
        async with running_service(settings.model_copy(update={"catalog": path})):
            pass


@pytest.mark.parametrize("command", ["serve", "worker", "dev"])
def test_a_bad_catalog_stops_the_command_with_its_message(settings, tmp_path, command) -> None:
    path = write_catalog(tmp_path, model("google/x", durations=[]))
    completed = run(command, env=settings_env(settings, LUNOS_CATALOG=str(path)))
    assert completed.returncode != 0
    expected = (
        f'catalog {path}: model "google/x": field "durations": must be a non-empty list of positive integers'
    )
    assert expected in completed.stderr
    assert "Traceback" not in completed.stderr


# -- Through the real google-genai SDK against the fake Vertex AI --------------------------------------


async def test_a_retired_id_reaches_google_as_veo_3_1(settings) -> None:
    with FakeGoogleServer(FakeGoogle(latency_seconds=0.2)) as server:
        google = {
            "provider": "google",
            "google_api_key": API_KEY,
            "google_base_url": server.url,
            "google_start_attempts": 1,
        }
        async with serving(settings, **google) as (rt, client):
            key = await create_user(rt, "veo", "10.00")
            submitted = []
            for model_id in (VEO, "google/veo-3.0-fast-generate-001"):
                response = await client.post(
                    "/v1/video/generations", headers=auth(key), json=generation_body(model=model_id)
                )
                assert response.status_code == 200, response.text
                submitted.append(response.json())
            finals = [await wait_for_status(client, s["id"], auth(key)) for s in submitted]
            rows = [await stored(rt, s["id"]) for s in submitted]
            listed = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]

    fake = server.fake
    starts = [path for path in fake.paths if path.endswith(":predictLongRunning")]
    assert starts == [
        "v1beta1/publishers/google/models/veo-3.1-generate-001:predictLongRunning",
        "v1beta1/publishers/google/models/veo-3.1-fast-generate-001:predictLongRunning",
    ]
    assert not [path for path in fake.paths if "veo-3.0" in path]
    assert [op.model for op in fake.operations.values()] == [
        "veo-3.1-generate-001",
        "veo-3.1-fast-generate-001",
    ]
    assert "/models/veo-3.1-generate-001/operations/" in submitted[0]["operation_name"]
    # The preview's contract is what reached Google: 8 seconds of 16:9.
    assert fake.start_requests[0]["parameters"]["durationSeconds"] == 8
    assert fake.start_requests[0]["parameters"]["aspectRatio"] == "16:9"
    assert [f["status"] for f in finals] == ["completed", "completed"]
    assert [(r.model, r.provider_model, r.cost_cents) for r in rows] == [
        (VEO, "veo-3.1-generate-001", 320),
        ("google/veo-3.0-fast-generate-001", "veo-3.1-fast-generate-001", 120),
    ]
    assert sorted(op["model"] for op in listed) == ["google/veo-3.0-fast-generate-001", VEO]
