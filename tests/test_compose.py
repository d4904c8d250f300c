"""The container set-up, checked without a Docker engine: structure, wiring, and real settings only."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from lunos_events.cli import main as cli
from lunos_events.services.media_request import largest_submit_bytes
from lunos_events.settings import Settings
from lunos_events.stack.stack import PRODUCTION_SETTINGS
from tests.processes import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
APP_SERVICES = ("migrate", "api", "worker")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def setting_names() -> set[str]:
    """Every environment variable name Settings reads (LUNOS_ fields and the SDK's own aliases)."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"LUNOS_{name.upper()}")
        for alias in getattr(field.validation_alias, "choices", ()):
            names.add(alias.upper())
    return names


def test_services_and_their_wiring(compose: dict) -> None:
    services = compose["services"]
    assert {"api", "worker", "migrate", "redis", "postgres", "minio", "proxy"} <= set(services)
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == "lunos-events:latest"
        command = services[name]["command"]
        assert command[0] == "lunos-events" and command[1] in cli.commands, command
    assert services["api"]["command"][1] == "serve"
    assert services["worker"]["command"][1] == "worker"
    assert services["migrate"]["command"][1] == "migrate"
    for image_service, image in (("redis", "redis:"), ("postgres", "postgres:"), ("minio", "minio/minio")):
        assert services[image_service]["image"].startswith(image)


def test_api_and_worker_scale(compose: dict) -> None:
    services = compose["services"]
    for name in ("api", "worker"):
        assert services[name]["deploy"]["replicas"] >= 2
        assert "container_name" not in services[name]  # a fixed name forbids replicas
        assert "ports" not in services[name]  # a fixed host port forbids replicas; the proxy publishes
    assert services["proxy"]["ports"] == ["8787:8787"]
    assert "reverse_proxy api:8787" in caddyfile(compose)


def caddyfile(compose: dict) -> str:
    (mounted,) = compose["services"]["proxy"]["configs"]
    assert mounted["target"] in compose["services"]["proxy"]["command"]
    return compose["configs"][mounted["source"]]["content"]


def test_the_proxy_bounds_requests_like_the_api(compose: dict) -> None:
    """Slow and oversized requests are refused at the edge too, and event streams are not cut."""
    text = caddyfile(compose)
    defaults = Settings(_env_file=None)
    assert re.search(rf"read_header {defaults.http_head_timeout_seconds:g}s\n", text)
    assert f"max_header_size {defaults.http_max_head_bytes // 1024}KiB" in text
    # Bodies as large as the largest submit (one carrying images) pass, and not much more.
    max_size = re.search(r"max_size (\d+)MiB\n", text)
    assert max_size is not None
    largest = largest_submit_bytes(defaults.max_body_bytes, defaults.max_image_bytes)
    assert largest <= int(max_size.group(1)) * 1024 * 1024 < largest + 1024 * 1024
    assert re.search(r"\bidle \d+s\n", text)
    # Go's ReadTimeout (read_body) and WriteTimeout (write) end requests still running: streams.
    assert "read_body" not in text and not re.search(r"\bwrite \d", text)
    assert "flush_interval -1" in text


def test_health_checks_and_start_order(compose: dict) -> None:
    services = compose["services"]
    for name in ("api", "worker", "redis", "postgres", "minio"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    for service in services.values():
        for dependency in service.get("depends_on", {}):
            assert dependency in services


def test_every_variable_set_is_a_real_setting(compose: dict) -> None:
    known = setting_names()
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert environment["LUNOS_STORAGE"] == "r2"
        assert environment["LUNOS_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert environment["LUNOS_REDIS_URL"].startswith("redis://redis:")
        unknown = {var for var in environment if var not in known}
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
    dockerfile_vars = set(re.findall(r"\b(LUNOS_[A-Z0-9_]+)=", DOCKERFILE.read_text()))
    assert dockerfile_vars and dockerfile_vars <= known


def test_settings_in_compose_build_the_production_backends(compose: dict, monkeypatch) -> None:
    """The api's environment, with compose's defaults filled in, gives Settings that pick R2 and Postgres."""
    for var in [v for v in os.environ if v.startswith(("LUNOS_", "GOOGLE_"))]:
        monkeypatch.delenv(var)
    for var, value in compose["services"]["api"]["environment"].items():
        monkeypatch.setenv(var, re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value)))
    settings = Settings()
    assert settings.storage == "r2" and settings.r2_bucket == "videos"
    assert settings.resolved_database_url() == "postgresql+asyncpg://lunos:lunos@postgres:5432/lunos"
    assert settings.resolved_provider() == "local"  # no Google credentials given


def test_dockerfile_runs_the_package(compose: dict) -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    assert "pip install" in text and "COPY lunos_events" in text
    assert 'CMD ["lunos-events", "serve"]' in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r"^USER (?!root)", text, re.M)


def test_compose_and_the_stack_command_use_the_same_settings(compose: dict) -> None:
    """`lunos-events stack` gives its processes what compose gives api and worker (bar addresses)."""
    environment = compose["services"]["api"]["environment"]
    defaults = {
        var: re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value)) for var, value in environment.items()
    }
    for var, value in PRODUCTION_SETTINGS.items():
        assert defaults[var] == value, var
    # The stack sets the addresses of its own servers; compose names its services.
    stack_owned = {"LUNOS_DATABASE_URL", "LUNOS_REDIS_URL", "LUNOS_PUBLIC_BASE_URL"}
    stack_owned |= {"LUNOS_R2_ENDPOINT_URL", "LUNOS_R2_PUBLIC_BASE_URL"}
    shared = {var for var in defaults if var.startswith("LUNOS_")} - stack_owned
    providers = {"LUNOS_PROVIDER"}  # empty in compose: the caller's environment decides, as in the stack
    assert shared - providers == set(PRODUCTION_SETTINGS)
