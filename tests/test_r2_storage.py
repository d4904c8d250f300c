"""R2 storage through aioboto3 against moto's S3 server (real HTTP on loopback)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select, update

from lunos_events.ids import poster_key, sample_key
from lunos_events.serving import running_service
from lunos_events.settings import Settings
from lunos_events.storage import build_storage
from lunos_events.storage.r2 import R2Storage, presigned_expiry
from lunos_events.store.models import Operation
from tests.conftest import auth, create_user
from tests.fake_google import FakeGoogle, FakeGoogleServer
from tests.fake_r2 import FlakyS3Proxy, create_bucket, moto_server, r2_overrides, s3_client
from tests.helpers import probe_mp4, wait_for_status
from tests.media_support import image_data, picture, png
from tests.test_veo_provider import google_settings, submit_and_wait

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server, url = moto_server()
    server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def r2_bucket(s3_endpoint: str) -> str:
    return create_bucket(s3_endpoint)


def r2_storage(settings: Settings, endpoint: str, bucket: str, **extra: object) -> R2Storage:
    storage = build_storage(settings.model_copy(update=r2_overrides(endpoint, bucket, **extra)))
    assert isinstance(storage, R2Storage)
    return storage


async def test_large_video_is_uploaded_in_parts_byte_identical(settings, s3_endpoint, r2_bucket, tmp_path):
    source = tmp_path / "big.mp4"
    source.write_bytes(os.urandom(12 * MiB))
    storage = r2_storage(
        settings,
        s3_endpoint,
        r2_bucket,
        r2_multipart_threshold_bytes=5 * MiB,
        r2_multipart_chunk_bytes=5 * MiB,
    )
    try:
        await storage.save("acct/123-secret-video.mp4", source)
        url = await storage.url_for("acct/123-secret-video.mp4")
    finally:
        await storage.aclose()
    head = s3_client(s3_endpoint).head_object(Bucket=r2_bucket, Key="acct/123-secret-video.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == source.read_bytes()


async def test_small_video_is_one_put(settings, s3_endpoint, r2_bucket, tmp_path: Path) -> None:
    source = tmp_path / "small.mp4"
    source.write_bytes(os.urandom(100_000))
    storage = r2_storage(settings, s3_endpoint, r2_bucket)
    try:
        await storage.save("a/b.mp4", source)
        await storage.save("a/b.mp4", source)  # a re-run job overwrites its own key
    finally:
        await storage.aclose()
    head = s3_client(s3_endpoint).head_object(Bucket=r2_bucket, Key="a/b.mp4")
    assert "-" not in head["ETag"] and head["ContentLength"] == 100_000


async def test_transient_s3_errors_are_retried(settings, s3_endpoint, r2_bucket, tmp_path) -> None:
    source = tmp_path / "big.mp4"
    source.write_bytes(os.urandom(11 * MiB))
    parts = {"r2_multipart_threshold_bytes": 5 * MiB, "r2_multipart_chunk_bytes": 5 * MiB}
    with FlakyS3Proxy(s3_endpoint, failures=3) as proxy:
        storage = r2_storage(settings, proxy.url, r2_bucket, **parts)
        try:
            await storage.save("retried.mp4", source)
        finally:
            await storage.aclose()
        assert proxy.served_errors == 3
    stored = s3_client(s3_endpoint).get_object(Bucket=r2_bucket, Key="retried.mp4")["Body"].read()
    assert stored == source.read_bytes()

    with FlakyS3Proxy(s3_endpoint, failures=10**6) as proxy:
        storage = r2_storage(settings, proxy.url, r2_bucket, r2_max_attempts=2, **parts)
        try:
            with pytest.raises(Exception, match=r"ServiceUnavailable|503"):
                await storage.save("never.mp4", source)
        finally:
            await storage.aclose()
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=r2_bucket, Prefix="never")
    assert listed.get("KeyCount", 0) == 0


async def test_public_base_url_is_used_without_signing(settings, s3_endpoint, r2_bucket) -> None:
    storage = r2_storage(settings, s3_endpoint, r2_bucket, r2_public_base_url="https://videos.example.com/")
    try:
        url = await storage.url_for("user 1/123-x-video.mp4")
        assert url == "https://videos.example.com/user%201/123-x-video.mp4"
        assert await storage.refresh_url("user 1/123-x-video.mp4", url) is None
    finally:
        await storage.aclose()


async def test_presigned_url_is_refreshed_only_near_expiry(settings, s3_endpoint, r2_bucket) -> None:
    storage = r2_storage(
        settings, s3_endpoint, r2_bucket, r2_presign_expiry_seconds=7200, r2_presign_refresh_seconds=600
    )
    try:
        fresh = await storage.url_for("k.mp4")
        assert presigned_expiry(fresh) is not None
        assert await storage.refresh_url("k.mp4", fresh) is None  # two hours left
        closing = await storage.presigned_url("k.mp4", 300)  # five minutes left
        renewed = await storage.refresh_url("k.mp4", closing)
        assert renewed is not None and renewed != closing
        assert presigned_expiry(renewed) > presigned_expiry(closing) + 3600
    finally:
        await storage.aclose()


async def test_google_and_r2_end_to_end(settings, s3_endpoint, r2_bucket) -> None:
    """Submit with provider google (fake) and storage r2 (moto): the URL serves Google's exact bytes."""
    with FakeGoogleServer(FakeGoogle()) as google:
        configured = google_settings(
            settings, google, **r2_overrides(s3_endpoint, r2_bucket, r2_presign_refresh_seconds=3600)
        )
        async with (
            running_service(configured) as rt,
            httpx.AsyncClient(base_url=configured.resolved_public_base_url(), timeout=30) as client,
        ):
            key, submitted, final = await submit_and_wait(rt, client, "prod")
            assert final["status"] == "completed", final
            assert final["video_url"].startswith(f"{s3_endpoint}/{r2_bucket}/prod/")
            async with httpx.AsyncClient() as http:
                video = await http.get(final["video_url"])
            assert video.status_code == 200
            assert video.headers["content-type"] == "video/mp4"
            expected = google.fake.videos[submitted["operation_name"].rsplit("/", 1)[-1]]
            assert video.content == expected
            assert probe_mp4(video.content)["codec"] == "h264"

            # A stored URL about to expire is re-signed by the status read, and the new one is kept.
            async with rt.store.reading() as conn:
                video_key = (
                    await conn.execute(select(Operation.video_key).where(Operation.id == submitted["id"]))
                ).scalar_one()
            closing = await rt.storage.presigned_url(video_key, 120)
            async with rt.store.transaction() as conn:
                await conn.execute(
                    update(Operation).where(Operation.id == submitted["id"]).values(video_url=closing)
                )
            # A list shows it re-signed too (a gallery of week-old videos keeps working).
            listed = (await client.get("/v1/video/generations", headers=auth(key))).json()["data"]
            [entry] = [e for e in listed if e["id"] == submitted["id"]]
            assert entry["video_url"] != closing and entry["video_urls"][0] == entry["video_url"]
            assert presigned_expiry(entry["video_url"]) > presigned_expiry(closing) + 3600
            again = (await client.get(f"/v1/video/generations/{submitted['id']}", headers=auth(key))).json()
            assert again["status"] == "completed" and again["video_url"] != closing
            assert presigned_expiry(again["video_url"]) > presigned_expiry(closing) + 3600
            async with httpx.AsyncClient() as http:
                assert (await http.get(again["video_url"])).content == expected
            async with rt.store.reading() as conn:
                stored = (
                    await conn.execute(select(Operation.video_url).where(Operation.id == submitted["id"]))
                ).scalar_one()
            assert stored == again["video_url"]


async def test_inputs_are_put_read_and_deleted(settings, s3_endpoint, r2_bucket) -> None:
    storage = r2_storage(settings, s3_endpoint, r2_bucket)
    try:
        await storage.put("acct/inputs/x.json", b'{"image": 1}', "application/json")
        assert await storage.read("acct/inputs/x.json") == b'{"image": 1}'
        head = s3_client(s3_endpoint).head_object(Bucket=r2_bucket, Key="acct/inputs/x.json")
        assert head["ContentType"] == "application/json"
        await storage.delete("acct/inputs/x.json")
        with pytest.raises(FileNotFoundError):
            await storage.read("acct/inputs/x.json")
    finally:
        await storage.aclose()


async def test_samples_poster_and_inputs_on_r2_with_google(settings, s3_endpoint, r2_bucket) -> None:
    with FakeGoogleServer(FakeGoogle(latency_seconds=2.0)) as google:
        configured = google_settings(settings, google, **r2_overrides(s3_endpoint, r2_bucket))
        async with (
            running_service(configured) as rt,
            httpx.AsyncClient(base_url=configured.resolved_public_base_url(), timeout=30) as client,
        ):
            key = await create_user(rt, "r2-media", "20.00")
            first = png(picture())
            body = {
                "model": "google/veo-3.1-generate-001",
                "prompt": "A paper boat",
                "parameters": {"image": image_data(first), "sampleCount": 2},
            }
            response = await client.post("/v1/video/generations", headers=auth(key), json=body)
            assert response.status_code == 200, response.text
            op = await rt.store.operation(response.json()["id"])
            assert op is not None
            # Its inputs are in the bucket while it runs, and removed once it ended.
            inputs = op.parameters["inputs"]
            stored = s3_client(s3_endpoint).get_object(Bucket=r2_bucket, Key=inputs)
            assert stored["ContentType"] == "application/json"
            assert json.loads(stored["Body"].read())["image"] == image_data(first)
            final = await wait_for_status(client, op.id, auth(key))
            assert final["status"] == "completed", final
            with pytest.raises(ClientError):
                s3_client(s3_endpoint).head_object(Bucket=r2_bucket, Key=inputs)
            async with httpx.AsyncClient() as http:
                videos = [await http.get(url) for url in final["video_urls"]]
                poster = await http.get(final["thumbnail_url"])
            assert [v.headers["content-type"] for v in videos] == ["video/mp4", "video/mp4"]
            assert videos[0].content != videos[1].content
            assert poster.headers["content-type"] == "image/jpeg"

            # A delete removes every object the operation stored: samples and poster.
            keys = [sample_key(op.video_key, 0), sample_key(op.video_key, 1), poster_key(op.video_key)]
            s3 = s3_client(s3_endpoint)
            assert all(s3.head_object(Bucket=r2_bucket, Key=k)["ContentLength"] > 0 for k in keys)
            deleted = await client.delete(f"/v1/video/generations/{op.id}", headers=auth(key))
            assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
            # The times stay: it was made, ran and ended, then its video was deleted.
            kept = {"created_at", "started_at", "completed_at"}
            for k in keys:
                with pytest.raises(ClientError):
                    s3.head_object(Bucket=r2_bucket, Key=k)
            again = (await client.get(f"/v1/video/generations/{op.id}", headers=auth(key))).json()
            assert set(again) == {"id", "status", "events_url", *kept} and again["status"] == "deleted"


async def test_delete_removes_the_video_from_the_bucket(settings, s3_endpoint, r2_bucket) -> None:
    from botocore.exceptions import ClientError

    from tests.conftest import create_user
    from tests.helpers import submit_generation, wait_for_status

    configured = settings.model_copy(update=r2_overrides(s3_endpoint, r2_bucket))
    async with (
        running_service(configured) as rt,
        httpx.AsyncClient(base_url=configured.resolved_public_base_url(), timeout=30) as client,
    ):
        key = await create_user(rt, "bucketed")
        op_id = await submit_generation(client, key)
        final = await wait_for_status(client, op_id, auth(key))
        assert final["status"] == "completed" and final["video_url"].startswith(s3_endpoint)
        async with rt.store.reading() as conn:
            video_key = (
                await conn.execute(select(Operation.video_key).where(Operation.id == op_id))
            ).scalar_one()
        s3 = s3_client(s3_endpoint)
        assert s3.head_object(Bucket=r2_bucket, Key=video_key)["ContentLength"] > 0

        deleted = await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))
        assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket=r2_bucket, Key=video_key)
        assert missing.value.response["Error"]["Code"] == "404"
        # Again: S3 deletes are idempotent, and so is ours.
        assert (await client.delete(f"/v1/video/generations/{op_id}", headers=auth(key))).status_code == 200
        status = (await client.get(f"/v1/video/generations/{op_id}", headers=auth(key))).json()
        assert status["status"] == "deleted" and "video_url" not in status
