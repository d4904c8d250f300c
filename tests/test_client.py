"""The Python client against a live server: every method, typed results, typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from lunos_client import (
    APIError,
    AsyncLunosClient,
    AuthenticationError,
    BadRequestError,
    GenerationFailedError,
    InsufficientBalanceError,
    LunosClient,
    ModelNotFoundError,
    NotFoundError,
    ServerError,
    VideoEvent,
    VideoGeneration,
    VideoNotReadyError,
    VideoStatus,
    WaitTimeoutError,
)
from lunos_events.store.models import Operation
from tests.client_support import in_thread
from tests.conftest import create_user
from tests.helpers import probe_mp4

pytestmark = pytest.mark.anyio


async def operations_of(rt, account_id: str) -> dict[str, Operation]:
    async with rt.store.reading() as conn:
        rows = (await conn.execute(select(Operation).where(Operation.account_id == account_id))).all()
    return {row.id: row for row in rows}


def files_in(path: Path) -> list[Path]:
    return list(path.iterdir()) if path.exists() else []


def base_url(rt) -> str:
    return rt.settings.resolved_public_base_url()


async def test_blocking_client_every_method(service, tmp_path: Path) -> None:
    key = await create_user(service, "py-sync", "100.00")

    def scenario() -> dict:
        statuses: list[VideoStatus] = []
        progress: list[tuple[int, int | None]] = []
        with LunosClient(key, base_url=base_url(service) + "/", app_id="py-app") as lunos:
            created = lunos.video.generate_video(
                "A cinematic shot of a majestic lion in the savannah.",
                aspect_ratio="16:9",
                negative_prompt="cartoon, drawing, low quality",
                response_format="mp4",
            )
            polled = lunos.video.get_video_status(created.id, "py-app")
            plain = lunos.video.generate("A futuristic city skyline at night", negative_prompt="blurry")
            wide = lunos.video.generate_widescreen("A car chase", negative_prompt="cartoon")
            mp4 = lunos.video.generate_mp4("A peaceful forest", app_id="other-app")
            final = lunos.video.generate_and_wait(
                "A sunset over mountains", poll_interval=0.2, max_wait=60, on_status=statuses.append
            )
            saved = lunos.video.download(
                final.id, tmp_path / "out" / "sunset.mp4", progress=lambda *p: progress.append(p)
            )
            events = list(lunos.video.stream_events(created.id))
            history = list(lunos.video.stream_events(created.id, last_event_id=0))
        return locals()

    seen = await in_thread(scenario)
    created, final = seen["created"], seen["final"]
    assert isinstance(created, VideoGeneration)
    assert created.status == "pending"
    assert created.operation_name.startswith("operations/veo-3.1-generate-001/")
    assert created.events_url.startswith(
        f"{base_url(service)}/v1/video/generations/{created.id}/events?token="
    )
    assert isinstance(seen["polled"], VideoStatus) and seen["polled"].id == created.id

    assert final.is_completed and final.video_url.startswith(f"{base_url(service)}/media/py-sync/")
    assert [s.status for s in seen["statuses"]] == ["pending", "processing", "completed"]
    # The final status tells when it was made, typed: created, started, completed, in that order.
    assert final.progress == 100 and final.eta_seconds is None and final.queue_position is None
    assert final.created_at is not None and final.created_at.tzinfo is not None
    assert final.created_at <= final.started_at <= final.completed_at
    processing = seen["statuses"][1]
    assert processing.is_processing and not processing.is_final
    assert 1 <= processing.progress <= 99 and processing.eta_seconds >= 1
    data = seen["saved"].read_bytes()
    assert probe_mp4(data)["codec"] == "h264"
    assert seen["progress"][-1] == (len(data), len(data))
    assert not [p for p in seen["saved"].parent.iterdir() if p.name.endswith(".part")]

    # The whole stream of the first operation, from its current state to its final one.
    events = seen["events"]
    assert all(isinstance(e, VideoEvent) for e in events)
    assert events[-1].type == "video.completed" and events[-1].status.id == created.id
    # From the start (after event 0): every status change, each once, in order. Progress reports
    # (transient, no id) come only while it runs, so their count depends on timing: set apart.
    history = seen["history"]
    changes = [e for e in history if not e.is_progress]
    assert [e.type for e in changes] == ["video.pending", "video.processing", "video.completed"]
    assert all(e.status.id == created.id for e in history)
    assert changes[0].id < changes[1].id < changes[2].id
    assert all(e.is_transient and e.status.is_processing for e in history if e.is_progress)

    # What reached the server is what each method promises.
    ops = await operations_of(service, "py-sync")
    first, plain, wide, mp4 = (ops[seen[name].id] for name in ("created", "plain", "wide", "mp4"))
    assert first.app_id == "py-app" and first.parameters["negativePrompt"] == "cartoon, drawing, low quality"
    assert plain.model == "google/veo-3.0-generate-preview" and plain.parameters["negativePrompt"] == "blurry"
    assert wide.parameters["aspectRatio"] == "16:9" and wide.parameters["negativePrompt"] == "cartoon"
    assert mp4.app_id == "other-app" and mp4.parameters["response_format"] == "mp4"
    assert len(ops) == 5


async def test_async_client_every_method(service, tmp_path: Path) -> None:
    key = await create_user(service, "py-async", "100.00")
    statuses: list[str] = []
    async with AsyncLunosClient(key, base_url=base_url(service), app_id="async-app") as lunos:
        created = await lunos.video.generate_video("A lion", negative_prompt="cartoon")
        assert isinstance(created, VideoGeneration) and created.status == "pending"
        assert (await lunos.video.get_video_status(created.id)).id == created.id
        # The stream opens on the current state: the provider took it during the submit.
        events = [e async for e in lunos.video.stream_events(created.id)]
        changes = [e for e in events if not e.is_progress]
        assert [e.type for e in changes] == ["video.processing", "video.completed"]
        assert changes[0].id < changes[1].id
        assert [e.status.status for e in changes] == ["processing", "completed"]
        # Reports, if any came while it ran, sit between the processing and the completed events.
        reports = [n for n, e in enumerate(events) if e.is_progress]
        assert all(0 < n < len(events) - 1 for n in reports)
        assert all(events[n].id is None and 1 <= events[n].status.progress <= 99 for n in reports)
        plain = await lunos.video.generate("A city")
        wide = await lunos.video.generate_widescreen("A chase")
        mp4 = await lunos.video.generate_mp4("A forest", aspect_ratio="16:9")
        final = await lunos.video.generate_and_wait(
            "A sunset", poll_interval=0.2, max_wait=60, on_status=lambda s: statuses.append(s.status)
        )
        saved = await lunos.video.download(final, tmp_path / "sunset.mp4")
    assert statuses == ["pending", "processing", "completed"]
    assert probe_mp4(saved.read_bytes())["frames"] > 0
    ops = await operations_of(service, "py-async")
    assert {op.app_id for op in ops.values()} == {"async-app"}
    assert ops[wide.id].parameters["aspectRatio"] == "16:9"
    assert ops[mp4.id].parameters["response_format"] == "mp4"
    assert ops[plain.id].prompt == "A city"


async def test_errors_are_typed(service, tmp_path: Path) -> None:
    key = await create_user(service, "py-errors", "10.00")
    broke = await create_user(service, "py-broke", "0.00")
    base = base_url(service)
    async with AsyncLunosClient("lun_not-a-real-key", base_url=base) as stranger:
        with pytest.raises(AuthenticationError) as caught:
            await stranger.video.get_video_status("video-op:py-errors:1")
        assert caught.value.status == 401
    async with AsyncLunosClient(broke, base_url=base) as poor:
        with pytest.raises(InsufficientBalanceError) as caught:
            await poor.video.generate("A lion")
        assert (caught.value.status, caught.value.message) == (402, "Insufficient balance")

    async with AsyncLunosClient(key, base_url=base, max_retries=0) as lunos:
        with pytest.raises(ModelNotFoundError) as model_error:
            await lunos.video.generate("A lion", model="acme/unknown-model")
        assert (model_error.value.status, model_error.value.message) == (404, "Model not found")
        with pytest.raises(NotFoundError) as missing:
            await lunos.video.get_video_status("video-op:py-errors:1")
        assert not isinstance(missing.value, ModelNotFoundError)
        with pytest.raises(BadRequestError) as bad:
            await lunos.video.generate_video("", aspect_ratio="16:9")
        assert bad.value.status == 400 and "prompt" in bad.value.message
        with pytest.raises(BadRequestError):
            await lunos.video.generate("A lion", aspect_ratio="4:3")
        with pytest.raises(ServerError) as start_failed:
            await lunos.video.generate("A lion #simulate-start-failure")
        assert (start_failed.value.status, start_failed.value.message) == (
            502,
            "Failed to start video generation",
        )

        with pytest.raises(GenerationFailedError) as failed:
            await lunos.video.generate_and_wait(
                "A storm #simulate-safety-block", poll_interval=0.2, max_wait=60
            )
        assert failed.value.status.status == "failed"
        assert failed.value.error == "The video was blocked by the provider's safety filters."
        with pytest.raises(GenerationFailedError):
            await lunos.video.download(failed.value.status.id, tmp_path / "downloads" / "none.mp4")
        assert not files_in(tmp_path / "downloads")
    assert all(isinstance(e, APIError) for e in (bad.value, missing.value, start_failed.value))


@pytest.mark.settings(simulator_latency_seconds=60)
async def test_waits_end_at_max_wait_and_unfinished_videos_are_not_downloaded(
    service, tmp_path: Path
) -> None:
    key = await create_user(service, "py-patient", "100.00")

    def scenario() -> None:
        with LunosClient(key, base_url=base_url(service)) as lunos:
            for use_events in (True, False):
                with pytest.raises(WaitTimeoutError) as caught:
                    lunos.video.generate_and_wait(
                        "A slow one", poll_interval=0.2, max_wait=1, use_events=use_events
                    )
                # Unfinished: the provider is making it (it started at once), with an estimate.
                last = caught.value.last_status
                assert last is not None and last.status == "processing", last
                assert 1 <= last.progress <= 99 and last.eta_seconds >= 1 and last.started_at
                with pytest.raises(VideoNotReadyError):
                    lunos.video.download(caught.value.operation_id, tmp_path / "downloads" / "early.mp4")
        assert not files_in(tmp_path / "downloads")

    await in_thread(scenario)


@pytest.mark.settings(simulator_latency_seconds=60)
async def test_cancel(service) -> None:
    key = await create_user(service, "py-cancel", "100.00")
    async with AsyncLunosClient(key, base_url=base_url(service)) as lunos:
        created = await lunos.video.generate("Never mind")
        cancelled = await lunos.video.cancel(created.id)
        assert (cancelled.id, cancelled.status) == (created.id, "cancelled")
        assert (await lunos.video.get_video_status(created.id)).status == "cancelled"
        with pytest.raises(GenerationFailedError):
            await lunos.video.wait(created, poll_interval=0.2, max_wait=10)


async def test_delete(service) -> None:
    key = await create_user(service, "py-delete", "100.00")
    async with AsyncLunosClient(key, base_url=base_url(service)) as lunos:
        done = await lunos.video.wait(
            await lunos.video.generate("Short-lived"), poll_interval=0.1, max_wait=30
        )
        assert done.is_completed and done.video_url
        deleted = await lunos.video.delete(done.id)
        assert (deleted.id, deleted.status, deleted.video_url) == (done.id, "deleted", None)
        assert deleted.is_final
        assert (await lunos.video.delete(done.id)).status == "deleted"  # idempotent
        status = await lunos.video.get_video_status(done.id)
        assert status.status == "deleted" and status.video_url is None
        with pytest.raises(NotFoundError):
            await lunos.video.delete("video-op:py-delete:1")

    def sync_side() -> None:
        with LunosClient(key, base_url=base_url(service)) as lunos:
            assert lunos.video.delete(done.id).status == "deleted"

    await in_thread(sync_side)


async def test_list_newest_first_with_a_cursor(service) -> None:
    key = await create_user(service, "py-list", "100.00")
    async with AsyncLunosClient(key, base_url=base_url(service)) as lunos:
        ids = [(await lunos.video.generate(f"Video {n}", app_id="lister")).id for n in range(3)]
        other = await lunos.video.generate("Elsewhere", app_id="another")
        first = await lunos.video.list(app_id="lister", limit=2)
        assert [s.id for s in first.data] == ids[::-1][:2] and first.has_more
        rest = await lunos.video.list(app_id="lister", limit=2, after=first.next_after)
        assert [s.id for s in rest.data] == ids[:1] and not rest.has_more
        everything = await lunos.video.list(limit=10)
        assert everything.data[0].id == other.id and len(everything.data) == 4
