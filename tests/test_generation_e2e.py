"""The documented flow over real HTTP: submit, worker tracks, poll until completed, download a real MP4."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from lunos_events.store.models import Event, Operation
from tests.conftest import auth, create_user
from tests.helpers import generation_body, probe_mp4, wait_for_status

pytestmark = pytest.mark.anyio


async def test_submit_poll_download(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "user123", "10.00")
    submitted = await client.post(
        "/v1/video/generations", headers=auth(key, "my-app"), json=generation_body()
    )
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert set(body) == {"id", "operation_name", "status", "cost", "currency", "events_url"}
    assert (body["cost"], body["currency"]) == ("3.20", "USD")  # what was charged
    assert re.fullmatch(r"video-op:user123:\d{13}", body["id"])
    assert body["operation_name"].startswith("operations/veo-3.1-generate-001/")
    assert body["status"] == "pending"

    running = (await client.get(f"/v1/video/generations/{body['id']}", headers=auth(key))).json()
    assert running.pop("events_url").startswith(
        f"{client.base_url}/v1/video/generations/{body['id']}/events?token="
    )
    # Started at submit, so the provider has it: processing, with its estimated progress.
    assert set(running) == {"id", "status", "created_at", "started_at", "progress", "eta_seconds"}
    assert running["status"] == "processing" and 1 <= running["progress"] <= 99

    final = await wait_for_status(client, body["id"], auth(key))
    assert final["status"] == "completed", final
    # The reference document's video_url, plus every sample's URL and the poster, and its times.
    times = {"created_at", "started_at", "completed_at", "progress"}
    assert set(final) == {"id", "status", "video_url", "video_urls", "thumbnail_url", "events_url", *times}
    assert final["progress"] == 100 and final["started_at"] == running["started_at"]
    assert running["created_at"] <= running["started_at"] <= final["completed_at"]
    assert final["video_urls"] == [final["video_url"]]
    assert final["thumbnail_url"].endswith("-video-poster.jpg")
    # The object key keeps the documented shape but adds an unguessable part.
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/media/user123/\d{13}-[A-Za-z0-9_-]{16,}-video\.mp4", final["video_url"]
    )

    video = await client.get(final["video_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    info = probe_mp4(video.content)
    settings = service.settings
    assert info["codec"] == "h264"
    assert (info["width"], info["height"]) == (settings.simulator_width, settings.simulator_height)
    assert info["width"] * 9 == info["height"] * 16
    assert info["seconds"] == pytest.approx(settings.simulator_video_seconds, abs=0.2)
    assert info["frames"] == round(settings.simulator_video_seconds * settings.simulator_fps)

    account = (await client.get("/v1/account", headers=auth(key))).json()
    assert account == {"id": "user123", "balance": "6.80", "currency": "USD", "tier": "dev"}

    async with service.store.reading() as conn:
        op = (await conn.execute(select(Operation).where(Operation.id == body["id"]))).one()
        events = (await conn.execute(select(Event.seq, Event.type).order_by(Event.seq))).all()
    assert op.app_id == "my-app"
    assert op.cost_cents == 320
    assert [tuple(e) for e in events] == [
        (1, "video.pending"),
        (2, "video.processing"),
        (3, "video.completed"),
    ]


async def test_range_requests_for_seeking(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "seeker")
    op_id = (await client.post("/v1/video/generations", headers=auth(key), json=generation_body())).json()[
        "id"
    ]
    url = (await wait_for_status(client, op_id, auth(key)))["video_url"]
    whole = (await client.get(url)).content

    part = await client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert part.content == whole[100:200]
    assert (await client.get(url, headers={"Range": f"bytes={len(whole) + 10}-"})).status_code == 416


async def test_media_rejects_unknown_and_escaping_keys(service, client: httpx.AsyncClient) -> None:
    # On PostgreSQL nothing else has created the data dir yet.
    service.settings.data_dir.mkdir(parents=True, exist_ok=True)
    (service.settings.data_dir / "secret.txt").write_text("not a video")
    for path in ("/media/nobody/none.mp4", "/media/../secret.txt", "/media/%2e%2e/secret.txt"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "error" in response.json()


async def test_different_prompts_render_different_videos(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "artist")
    urls = []
    for prompt in ("A red fox in snow", "A neon city at night"):
        op_id = (
            await client.post("/v1/video/generations", headers=auth(key), json=generation_body(prompt))
        ).json()["id"]
        urls.append((await wait_for_status(client, op_id, auth(key)))["video_url"])
    first, second = [(await client.get(u)).content for u in urls]
    assert first != second
    assert probe_mp4(first)["frames"] == probe_mp4(second)["frames"]
