"""/v1/videos driven by the real `openai` package (AsyncOpenAI: the service runs in this event loop),
pointed at the service with an API key of ours: create, retrieve, list, download, create_and_poll,
delete, and the money, events and errors behind them."""

from __future__ import annotations

import base64
import warnings
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from lunos_events.runtime import Runtime
from tests.conftest import auth, create_user
from tests.helpers import probe_mp4
from tests.media_support import difference, frames_rgb, picture, png

pytestmark = pytest.mark.anyio
# The SDK marks its Videos methods deprecated (OpenAI's own service shut down); they still work.
warnings.filterwarnings("ignore", category=DeprecationWarning)

FAST = "google/veo-3.1-fast-generate-001"


@pytest.fixture
async def key(service: Runtime) -> str:
    return await create_user(service, "oa-user", "20.00")


@pytest.fixture
async def oai(service: Runtime, key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    base = service.settings.resolved_public_base_url() + "/v1"
    async with openai.AsyncOpenAI(
        api_key=key, base_url=base, max_retries=0, default_headers={"X-App-ID": "oa-app"}
    ) as client:
        yield client


async def test_create_and_poll_then_download(
    service: Runtime, oai: openai.AsyncOpenAI, client: httpx.AsyncClient, key: str
) -> None:
    created = await oai.videos.create(
        model=FAST, prompt="A paper boat on a rainy street", seconds="4", size="720x1280"
    )
    # The provider accepted it before the answer: it is in progress, with an estimated progress.
    assert created.object == "video" and created.status == "in_progress" and 1 <= created.progress <= 99
    raw = await client.get(f"/v1/videos/{created.id}", headers=auth(key))
    assert raw.headers["openai-poll-after-ms"] == "100"
    assert (created.model, created.seconds, created.size, created.progress) == (
        FAST,
        "4",
        "720x1280",
        created.progress,
    )
    assert created.prompt == "A paper boat on a rainy street"

    # The same operation, money and app as the native API.
    native = (await client.get(f"/v1/video/generations/{created.id}", headers=auth(key))).json()
    assert native["status"] in ("processing", "completed")  # started at once: a free simulator
    # 0.15 per second, 4 seconds
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == "19.40"

    done = await oai.videos.poll(created.id, poll_interval_ms=50)
    assert (done.status, done.progress, done.error) == ("completed", 100, None)
    assert done.completed_at is not None and done.completed_at >= done.created_at

    content = await oai.videos.download_content(created.id, variant="video")
    video = probe_mp4(content.content)
    assert video["frames"] > 0 and video["codec"] == "h264"

    listed = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]
    assert [(o["id"], o["app_id"], o["cost"]) for o in listed] == [(created.id, "oa-app", "0.60")]

    polled = await oai.videos.create_and_poll(prompt="A lighthouse at dawn", model=FAST, poll_interval_ms=50)
    assert polled.status == "completed" and polled.size == "1280x720" and polled.seconds == "8"


async def test_list_pages_like_openai(oai: openai.AsyncOpenAI) -> None:
    made = [(await oai.videos.create(model=FAST, prompt=f"clip {n}", seconds="4")).id for n in range(3)]
    first = await oai.videos.list(limit=2)
    assert [v.id for v in first.data] == made[::-1][:2] and first.has_more
    assert first.last_id == made[1]
    seen = [v.id async for v in oai.videos.list(limit=2)]  # the SDK follows `last_id` itself
    assert seen == made[::-1]
    ascending = await oai.videos.list(order="asc", limit=10)
    assert [v.id for v in ascending.data] == made and ascending.has_more is False


async def test_delete_cancels_and_refunds_a_queued_video(
    service: Runtime, oai: openai.AsyncOpenAI, client: httpx.AsyncClient, key: str
) -> None:
    created = await oai.videos.create(model=FAST, prompt="to be deleted", seconds="8")
    deleted = await oai.videos.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "video.deleted")
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == "20.00"
    # Gone for the OpenAI surface; the native API still shows the operation, which was cancelled.
    for gone in (oai.videos.retrieve, oai.videos.delete, oai.videos.download_content):
        with pytest.raises(openai.NotFoundError):
            await gone(created.id)
    native = (await client.get(f"/v1/video/generations/{created.id}", headers=auth(key))).json()
    assert native["status"] == "deleted"


async def test_delete_of_a_finished_video_removes_its_files(
    service: Runtime, oai: openai.AsyncOpenAI, client: httpx.AsyncClient, key: str
) -> None:
    done = await oai.videos.create_and_poll(
        model=FAST, prompt="kept, then deleted", seconds="4", poll_interval_ms=50
    )
    assert done.status == "completed"
    status = (await client.get(f"/v1/video/generations/{done.id}", headers=auth(key))).json()
    urls = [*status["video_urls"], status["thumbnail_url"]]
    assert [(await client.get(url)).status_code for url in urls] == [200, 200]
    assert (await oai.videos.delete(done.id)).deleted
    assert [(await client.get(url)).status_code for url in urls] == [404, 404]
    # What was made was paid for: a delete refunds nothing.
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == "19.40"
    with pytest.raises(openai.NotFoundError):
        await oai.videos.retrieve(done.id)
    # The list leaves it out, and a page that ended on it still pages on from it.
    kept = await oai.videos.create(model=FAST, prompt="kept", seconds="4")
    assert [v.id for v in (await oai.videos.list()).data] == [kept.id]
    assert [v.id for v in (await oai.videos.list(after=done.id, order="asc")).data] == [kept.id]


async def test_bad_requests_are_clear_400s(
    service: Runtime, oai: openai.AsyncOpenAI, client: httpx.AsyncClient, key: str
) -> None:
    # The SDK hands our `{"error": "..."}` message over as the exception's `body`.
    refusals = [
        (
            dict(input_reference=("cat.png", b"not an image", "text/plain")),
            "'input_reference' must be an image",
        ),
        (
            dict(input_reference=("cat.png", b"\x89PNG\r\n\x1a\n...", "image/png")),
            "Field 'parameters.image' is not a decodable",
        ),
        (dict(seconds="12"), "Unsupported seconds '12': this model allows 4, 6, 8"),
        (dict(size="1792x1024"), "Unsupported size '1792x1024'"),
    ]
    for extra, message in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.videos.create(model=FAST, prompt="x", **extra)
        assert str(refused.value.body).startswith(message), refused.value.body
    with pytest.raises(openai.NotFoundError) as unknown:
        await oai.videos.create(model="sora-2", prompt="x")
    assert unknown.value.body == "Model not found"
    with pytest.raises(openai.NotFoundError):
        await oai.videos.retrieve("video-op:someone-else:1")
    with pytest.raises(openai.AuthenticationError):
        await oai.with_options(api_key="lun_wrong").videos.list()
    # JSON bodies work too, and every refusal is {"error": "..."}.
    response = await client.post("/v1/videos", headers=auth(key), json={"model": FAST})
    assert response.status_code == 400 and response.json() == {"error": "Missing required field: prompt"}
    by_url = {"prompt": "x", "input_reference": {"image_url": "http://127.0.0.1/a.png"}}
    response = await client.post("/v1/videos", headers=auth(key), json=by_url)
    assert response.status_code == 400 and "image" in response.json()["error"], response.json()
    by_file = {"prompt": "x", "input_reference": {"file_id": "file-123"}}
    response = await client.post("/v1/videos", headers=auth(key), json=by_file)
    assert response.status_code == 400
    assert response.json()["error"].startswith("'input_reference.file_id' is not supported")
    # A multipart upload streamed without a Content-Length is cut off at the body limit, not spooled.
    boundary = "b0undary"

    async def big_upload():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'.encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="input_reference"; '
            'filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        for _ in range(400):  # 6.5 MB: past the body limit with one image in it
            yield b"\0" * 16384
        yield f"\r\n--{boundary}--\r\n".encode()

    too_big = await client.post(
        "/v1/videos",
        headers={**auth(key), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=big_upload(),
    )
    assert too_big.status_code == 413, too_big.text
    bad_variant = await client.get("/v1/videos/x/content?variant=spritesheet", headers=auth(key))
    assert bad_variant.status_code == 400
    assert (await client.get("/v1/account", headers=auth(key))).json()["balance"] == "20.00"


async def test_input_reference_is_the_first_frame(
    oai: openai.AsyncOpenAI, client: httpx.AsyncClient, key: str
) -> None:
    """An uploaded `input_reference` (what the SDK sends) and a data URL in JSON both start the video."""
    first = picture(1280, 720)
    uploaded = await oai.videos.create_and_poll(
        model=FAST,
        prompt="from a picture",
        seconds="4",
        input_reference=("f.png", png(first), "image/png"),
        poll_interval_ms=50,
    )
    assert uploaded.status == "completed", uploaded.error
    frames = frames_rgb((await oai.videos.download_content(uploaded.id)).content)
    assert difference(first, frames[0]) < 12

    other = picture(1280, 720, hue=120)
    data_url = "data:image/png;base64," + base64.b64encode(png(other)).decode()
    created = await client.post(
        "/v1/videos",
        headers=auth(key),
        json={
            "model": FAST,
            "prompt": "from a data URL",
            "seconds": "4",
            "input_reference": {"image_url": data_url},
        },
    )
    assert created.status_code == 200, created.json()
    done = await oai.videos.poll(created.json()["id"], poll_interval_ms=50)
    frames = frames_rgb((await oai.videos.download_content(done.id)).content)
    assert difference(other, frames[0]) < 12 < difference(first, frames[0])
