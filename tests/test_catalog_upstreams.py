"""The catalog's capacity per upstream model: `[upstreams."<upstream model>"]` tables, read and
checked at load (bad values stop start-up with the file, the upstream and the field)."""

from __future__ import annotations

import pytest

from lunos_events.catalog import UNLIMITED, CatalogError, UpstreamCapacity
from lunos_events.catalog_file import load_catalog
from tests.test_catalog import catalog_text, model

FAST = "veo-3.1-fast-generate-001"
VEO = "veo-3.1-generate-001"


def write(tmp_path, text: str):
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


def test_the_shipped_catalog_sets_no_capacity() -> None:
    catalog = load_catalog(None)
    assert catalog.upstreams == {}
    assert catalog.capacity(VEO) is UNLIMITED
    assert catalog.upstream_models() == [VEO, FAST]


def test_an_extension_declares_an_upstreams_capacity(tmp_path) -> None:
    text = f'extends_default = true\n\n[upstreams."{VEO}"]\nstarts_per_minute = 10\nmax_in_flight = 4\n'
    catalog = load_catalog(write(tmp_path, text))
    assert catalog.capacity(VEO) == UpstreamCapacity(starts_per_minute=10, max_in_flight=4)
    assert catalog.capacity(FAST) is UNLIMITED  # only the upstream named
    assert len(catalog.models) == 5  # an extension may carry only capacity


def test_one_field_alone_and_a_replacing_file(tmp_path) -> None:
    text = catalog_text(model("acme/clip", upstream="acme-1")) + '\n[upstreams."acme-1"]\nmax_in_flight = 2\n'
    catalog = load_catalog(write(tmp_path, text))
    assert catalog.capacity("acme-1") == UpstreamCapacity(max_in_flight=2)
    assert catalog.upstream_models() == ["acme-1"]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("max_in_flight = 0", 'upstream "U": field "max_in_flight": must be an integer >= 1'),
        ("starts_per_minute = -3", 'upstream "U": field "starts_per_minute": must be an integer >= 1'),
        ('max_in_flight = "5"', 'upstream "U": field "max_in_flight": must be an integer >= 1'),
        ("max_in_flight = true", 'upstream "U": field "max_in_flight": must be an integer >= 1'),
        ("starts_per_minute = 1.5", 'upstream "U": field "starts_per_minute": must be an integer >= 1'),
        ("max_inflight = 3", 'upstream "U": unknown field "max_inflight" (the fields are: '),
        ("", 'upstream "U": sets no limit (the fields are: starts_per_minute, max_in_flight)'),
    ],
)
def test_a_bad_upstream_table_names_the_file_the_upstream_and_the_field(tmp_path, table, problem) -> None:
    path = write(tmp_path, f'extends_default = true\n[upstreams."{VEO}"]\n{table}\n')
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"catalog {path}: {problem.replace('U', VEO, 1)}"), str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("upstreams = 3\n", '"upstreams" must be a table of tables ([upstreams."<upstream model>"])'),
        ("[upstreams]\nmax_in_flight = 3\n", '"upstreams" must be a table of tables'),
        (
            '[upstreams."veo-3.1-generate-01"]\nmax_in_flight = 3\n',
            'upstream "veo-3.1-generate-01": no model in the catalog is served by it (the upstream '
            f"models are: {VEO}, {FAST})",
        ),
    ],
)
def test_a_bad_upstreams_section_is_refused(tmp_path, text, problem) -> None:
    path = write(tmp_path, "extends_default = true\n" + text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"catalog {path}: {problem}"), str(caught.value)


def test_a_replacing_file_drops_the_default_models_upstreams(tmp_path) -> None:
    # Without extends_default the shipped models are gone, so their upstreams cannot be limited.
    text = catalog_text(model("acme/clip", upstream="acme-1")) + f'\n[upstreams."{VEO}"]\nmax_in_flight = 2\n'
    with pytest.raises(CatalogError, match=f'upstream "{VEO}": no model in the catalog is served by it'):
        load_catalog(write(tmp_path, text))
