"""Google Veo through the real google-genai SDK against a fake Vertex AI endpoint on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
from sqlalchemy import select

from lunos_events.providers import build_provider
from lunos_events.providers.veo import UNKNOWN_OPERATION
from lunos_events.runtime import Runtime
from lunos_events.services import accounts
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.store.models import Event, Operation
from tests.conftest import auth, create_user
from tests.fake_google import API_KEY, BLOCK_MARKER, FakeGoogle, FakeGoogleServer
from tests.helpers import generation_body, probe_mp4, wait_for_status
from tests.processes import settings_env, spawn

pytestmark = pytest.mark.anyio

VEO3 = "google/veo-3.0-generate-001"


def google_settings(settings: Settings, server: FakeGoogleServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "provider": "google",
        "google_api_key": API_KEY,
        "google_base_url": server.url,
        "google_start_attempts": 3,
        "google_retry_initial_seconds": 0.05,
        "google_retry_max_seconds": 0.2,
        "capacity_cooldown_seconds": 0.2,
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest.fixture
def fake_google() -> Iterator[FakeGoogleServer]:
    with FakeGoogleServer(FakeGoogle()) as server:
        yield server


@pytest.fixture
async def veo_service(settings: Settings, fake_google: FakeGoogleServer) -> AsyncIterator[Runtime]:
    async with running_service(google_settings(settings, fake_google)) as rt:
        yield rt


@pytest.fixture
async def veo_client(veo_service: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    base = veo_service.settings.resolved_public_base_url()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield http


async def submit_and_wait(rt: Runtime, client: httpx.AsyncClient, account_id: str) -> tuple[str, dict, dict]:
    """Create an account, submit the reference body and wait: (API key, submit response, final status)."""
    key = await create_user(rt, account_id, "10.00")
    response = await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    assert response.status_code == 200, response.text
    submitted = response.json()
    return key, submitted, await wait_for_status(client, submitted["id"], auth(key))


async def balance(rt: Runtime, account_id: str) -> int:
    return (await accounts.get_account(rt.store, account_id)).balance_cents


async def test_completes_with_the_video_google_returned(veo_service, veo_client, fake_google) -> None:
    key = await create_user(veo_service, "veo", "10.00")
    parameters = {
        "aspectRatio": "9:16",
        "negativePrompt": "blurry",
        "durationSeconds": 4,
        "resolution": "1080p",
        "seed": 42,
        "personGeneration": "dont_allow",
    }
    body = {"model": VEO3, "prompt": "A lighthouse at dawn", "parameters": parameters}
    response = await veo_client.post("/v1/video/generations", headers=auth(key), json=body)
    assert response.status_code == 200, response.text
    submitted = response.json()
    assert submitted["operation_name"].startswith("projects/fake-project/locations/us-central1/")
    assert await balance(veo_service, "veo") == 1000 - 4 * 40

    final = await wait_for_status(veo_client, submitted["id"], auth(key))
    assert final["status"] == "completed", final
    video = await veo_client.get(final["video_url"])
    fake = fake_google.fake
    assert video.content == fake.videos[submitted["operation_name"].rsplit("/", 1)[-1]]
    assert probe_mp4(video.content)["codec"] == "h264"
    # What the SDK sent is what the client asked for, in Vertex AI's field names.
    assert fake.start_requests == [
        {
            "instances": [{"prompt": "A lighthouse at dawn"}],
            "parameters": {
                "sampleCount": 1,
                "aspectRatio": "9:16",
                "negativePrompt": "blurry",
                "durationSeconds": 4,
                "resolution": "1080p",
                "seed": 42,
                "personGeneration": "dont_allow",
            },
        }
    ]


async def test_safety_filtered_video_fails_with_reason_and_refund(veo_service, veo_client) -> None:
    key = await create_user(veo_service, "veo", "10.00")
    body = generation_body(f"something {BLOCK_MARKER}")
    op_id = (await veo_client.post("/v1/video/generations", headers=auth(key), json=body)).json()["id"]
    final = await wait_for_status(veo_client, op_id, auth(key))
    assert final["status"] == "failed"
    assert final["error"].startswith("The video was blocked by the provider's safety filters: ")
    assert "usage guidelines" in final["error"]
    assert await balance(veo_service, "veo") == 1000


async def test_start_retries_server_errors_and_queues_on_quota(veo_service, veo_client, fake_google) -> None:
    key = await create_user(veo_service, "veo", "10.00")
    fake_google.fake.start_errors = [503, 429]
    response = await veo_client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    assert response.status_code == 200, response.text
    # The 503 is retried at once; the 429 queues the operation (no provider operation yet)...
    assert "operation_name" not in response.json()
    assert len(fake_google.fake.start_requests) == 2
    # ...and the worker starts it once the credential has cooled down.
    final = await wait_for_status(veo_client, response.json()["id"], auth(key))
    assert final["status"] == "completed"
    assert len(fake_google.fake.start_requests) == 3
    assert await balance(veo_service, "veo") == 1000 - 320


@pytest.mark.parametrize("code", [429, 500, 503])
async def test_start_that_keeps_failing_is_queued_not_502(veo_service, veo_client, fake_google, code) -> None:
    key = await create_user(veo_service, "veo", "10.00")
    fake_google.fake.start_errors = [code] * 6
    response = await veo_client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    final = await wait_for_status(veo_client, response.json()["id"], auth(key))
    assert final["status"] == "completed"
    assert fake_google.fake.start_errors == []
    assert len(fake_google.fake.operations) == 1  # started once
    assert await balance(veo_service, "veo") == 1000 - 320


async def test_start_rejected_as_invalid_is_not_retried(veo_service, veo_client, fake_google) -> None:
    key = await create_user(veo_service, "veo", "10.00")
    fake_google.fake.start_errors = [400]
    response = await veo_client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    assert response.status_code == 502
    assert len(fake_google.fake.start_requests) == 1
    assert await balance(veo_service, "veo") == 1000


async def test_transient_poll_errors_do_not_fail_the_operation(veo_service, veo_client, fake_google) -> None:
    key = await create_user(veo_service, "veo", "10.00")
    fake_google.fake.poll_errors = [503, 500, 429, 503]
    op_id = (
        await veo_client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    ).json()["id"]
    final = await wait_for_status(veo_client, op_id, auth(key))
    assert final["status"] == "completed"
    assert fake_google.fake.poll_errors == []  # every scripted error was really served
    assert await balance(veo_service, "veo") == 1000 - 320


async def test_operation_google_forgot_fails_and_refunds(veo_service, veo_client, fake_google) -> None:
    fake_google.fake.latency_seconds = 60
    key = await create_user(veo_service, "veo", "10.00")
    op_id = (
        await veo_client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    ).json()["id"]
    fake_google.fake.forget_all()
    final = await wait_for_status(veo_client, op_id, auth(key))
    assert (final["status"], final["error"]) == ("failed", UNKNOWN_OPERATION)
    assert await balance(veo_service, "veo") == 1000


async def test_video_returned_as_uri_is_downloaded(veo_service, veo_client, fake_google) -> None:
    fake_google.fake.output = "uri"
    key = await create_user(veo_service, "veo", "10.00")
    submitted = (
        await veo_client.post("/v1/video/generations", headers=auth(key), json=generation_body())
    ).json()
    final = await wait_for_status(veo_client, submitted["id"], auth(key))
    assert final["status"] == "completed"
    video = await veo_client.get(final["video_url"])
    assert video.content == fake_google.fake.videos[submitted["operation_name"].rsplit("/", 1)[-1]]


async def test_project_mode_with_application_default_credentials(
    settings, fake_google, tmp_path, monkeypatch
) -> None:
    """GOOGLE_CLOUD_PROJECT + GOOGLE_CLOUD_LOCATION: OAuth tokens from ADC, project-scoped URLs."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_google.fake.credentials_file(tmp_path)))
    configured = google_settings(
        settings,
        fake_google,
        google_api_key=None,
        google_cloud_project="my-project",
        google_cloud_location="europe-west4",
    )
    async with (
        running_service(configured) as rt,
        httpx.AsyncClient(base_url=configured.resolved_public_base_url(), timeout=30) as client,
    ):
        _, _, final = await submit_and_wait(rt, client, "veo")
    assert final["status"] == "completed", final
    fake = fake_google.fake
    assert fake.token_requests >= 1
    model = "publishers/google/models/veo-3.1-generate-001"
    prefix = f"v1beta1/projects/my-project/locations/europe-west4/{model}"
    assert fake.paths[0] == f"{prefix}:predictLongRunning"
    assert fake.paths[-1] == f"{prefix}:fetchPredictOperation"


@pytest.mark.settings(job_timeout_seconds=1)
async def test_worker_restart_resumes_from_stored_operation_name(settings, fake_google) -> None:
    settings = google_settings(settings, fake_google)
    fake_google.fake.latency_seconds = 1.0
    async with running_service(settings, worker=False) as rt:
        key = await create_user(rt, "veo", "10.00")
        async with httpx.AsyncClient(base_url=settings.resolved_public_base_url(), timeout=30) as client:
            submitted = (
                await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
            ).json()
            # This worker dies (SIGKILL) right after Google reports the video done.
            doomed = spawn("worker", env=settings_env(settings, LUNOS_FAULT_POINT="provider_done"))
            with anyio.fail_after(60):
                while doomed.poll() is None:
                    await anyio.sleep(0.05)
            assert doomed.returncode == -9
            doomed.stdout.close()

            restarted = spawn("worker", env=settings_env(settings))
            try:
                final = await wait_for_status(client, submitted["id"], auth(key), timeout=60)
            finally:
                restarted.terminate()
                restarted.communicate(timeout=20)
        assert final["status"] == "completed"
        fake = fake_google.fake
        assert len(fake.start_requests) == 1  # resumed the same Google operation, never restarted it
        assert list(fake.operations) == [submitted["operation_name"]]
        assert fake.operations[submitted["operation_name"]].polls >= 2
        async with rt.store.reading() as conn:
            stored = (
                await conn.execute(
                    select(Operation.provider_operation).where(Operation.id == submitted["id"])
                )
            ).scalar_one()
            types = (
                (await conn.execute(select(Event.type).where(Event.operation_id == submitted["id"])))
                .scalars()
                .all()
            )
        assert stored == submitted["operation_name"]
        assert types == ["video.pending", "video.processing", "video.completed"]
        assert await balance(rt, "veo") == 1000 - 320


@pytest.mark.parametrize(
    ("model", "parameters", "message"),
    [
        (VEO3, {"durationSeconds": 5}, "Unsupported durationSeconds 5: this model allows 4, 6, 8"),
        (VEO3, {"durationSeconds": "8"}, "Unsupported durationSeconds '8': this model allows 4, 6, 8"),
        (VEO3, {"resolution": "4k"}, "Unsupported resolution '4k': this model allows 720p, 1080p"),
        (VEO3, {"personGeneration": "everyone"}, "Unsupported personGeneration 'everyone'"),
        (VEO3, {"seed": -1}, "Field 'seed' must be an integer from 0 to 4294967295"),
        (VEO3, {"seed": 2**32}, "Field 'seed' must be an integer from 0 to 4294967295"),
        (VEO3, {"seed": 1.5}, "Field 'seed' must be an integer"),
        (VEO3, {"seed": True}, "Field 'seed' must be an integer"),
        (VEO3, {"aspectRatio": "1:1"}, "Unsupported aspectRatio '1:1'"),
        ("google/veo-3.0-generate-preview", {"aspectRatio": "9:16"}, "Unsupported aspectRatio '9:16'"),
        ("google/veo-3.0-generate-preview", {"resolution": "1080p"}, "this model allows 720p"),
        ("google/veo-3.0-generate-preview", {"durationSeconds": 4}, "this model allows 8"),
    ],
)
async def test_invalid_model_parameters_are_400(service, client, model, parameters, message) -> None:
    key = await create_user(service, "picky", "10.00")
    body = {"model": model, "prompt": "a cat", "parameters": parameters}
    response = await client.post("/v1/video/generations", headers=auth(key), json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert await balance(service, "picky") == 1000


async def test_catalog_lists_current_veo3_models(service, client) -> None:
    models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    for model_id in (VEO3, "google/veo-3.0-fast-generate-001", "google/veo-3.1-generate-001"):
        assert models[model_id]["durations"] == [4, 6, 8]
        assert models[model_id]["resolutions"] == ["720p", "1080p"]
        assert models[model_id]["accepts_seed"] is True
    assert models["google/veo-3.0-fast-generate-001"]["price_per_second"] == "0.15"


def test_provider_is_chosen_by_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT", "LUNOS_PROVIDER", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().resolved_provider() == "local"
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    assert Settings().google_api_key == "k"
    assert Settings().resolved_provider() == "google"
    monkeypatch.setenv("LUNOS_PROVIDER", "local")
    assert Settings().resolved_provider() == "local"
    monkeypatch.setenv("LUNOS_PROVIDER", "google")
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "false")
    with pytest.raises(ValueError, match="Vertex AI mode"):
        build_provider(Settings(data_dir=tmp_path))
