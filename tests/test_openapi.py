"""openapi.yaml is a valid OpenAPI 3.1 document that describes every route the app serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from openapi_spec_validator import validate
from starlette.routing import Route

from lunos_events.api.app import create_app
from lunos_events.settings import Settings

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


def test_spec_is_valid_openapi_31() -> None:
    spec = load_spec()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_route_and_method_is_documented() -> None:
    spec_paths = load_spec()["paths"]
    normalized = {re.sub(r"\{[^}]+\}", "{}", path): ops for path, ops in spec_paths.items()}
    app = create_app(Settings())
    for route in app.routes:
        if not isinstance(route, Route) or route.path == "/":
            continue
        path = re.sub(r"\{[^}]+\}", "{}", route.path)
        assert path in normalized, f"{route.path} is not in openapi.yaml"
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in normalized[path], f"{method} {route.path} is not in openapi.yaml"
