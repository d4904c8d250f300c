"""GET /v1/usage?group_by=day: spend and counts per UTC day and app (what the gallery charts), on
SQLite and PostgreSQL alike, in the shape openapi.yaml gives."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import jsonschema
import pytest
import yaml
from sqlalchemy import update

from lunos_events.store.models import Operation
from tests.conftest import auth, create_user
from tests.helpers import generation_body, wait_for_status
from tests.processes import PROJECT_ROOT

pytestmark = pytest.mark.anyio
DAY_MS = 86_400_000


def validator(schema_name: str) -> jsonschema.Draft202012Validator:
    spec = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text())
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    )


async def test_usage_per_day_and_app(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "daily")
    ops = []
    for app in ("web", "web", "ios"):
        response = await client.post("/v1/video/generations", headers=auth(key, app), json=generation_body())
        ops.append(response.json()["id"])
    for op_id in ops:
        await wait_for_status(client, op_id, auth(key))
    # One of them moved to two days ago, just before midnight UTC: it counts on that day.
    today = int(time.time() * 1000) // DAY_MS
    async with service.store.transaction() as tx:
        await tx.execute(
            update(Operation).where(Operation.id == ops[0]).values(created_at_ms=(today - 1) * DAY_MS - 1)
        )
    report = (await client.get("/v1/usage?group_by=day", headers=auth(key))).json()
    validator("Usage").validate(report)

    def day(offset: int) -> str:
        return datetime.fromtimestamp((today + offset) * DAY_MS / 1000, UTC).date().isoformat()

    assert report["days"] == [
        {"date": day(-2), "app_id": "web", "operations": 1, "spend": "3.20"},
        {"date": day(0), "app_id": "ios", "operations": 1, "spend": "3.20"},
        {"date": day(0), "app_id": "web", "operations": 1, "spend": "3.20"},
    ]
    assert report["total"]["spend"] == "9.60"
    assert report["since"] == day(-29) + "T00:00:00.000Z"  # 30 days unless told

    since_yesterday = (await client.get(f"/v1/usage?group_by=day&since={day(-1)}", headers=auth(key))).json()
    assert [d["date"] for d in since_yesterday["days"]] == [day(0), day(0)]
    only_web = (await client.get("/v1/usage?group_by=day&app_id=web", headers=auth(key))).json()
    assert [d["app_id"] for d in only_web["days"]] == ["web", "web"]
    # Without group_by the report is as before: no `days`.
    assert "days" not in (await client.get("/v1/usage", headers=auth(key))).json()
    bad = await client.get("/v1/usage?group_by=week", headers=auth(key))
    assert bad.status_code == 400 and bad.json() == {"error": "'group_by' must be one of: app, day"}


async def test_video_and_list_shapes_match_the_spec(service, client: httpx.AsyncClient) -> None:
    key = await create_user(service, "shapes")
    created = await client.post(
        "/v1/videos", headers=auth(key), json={"prompt": "A fox", "model": "google/veo-3.1-generate-001"}
    )
    assert created.status_code == 200, created.text
    validator("Video").validate(created.json())
    await wait_for_status(client, created.json()["id"], auth(key))
    done = (await client.get(f"/v1/videos/{created.json()['id']}", headers=auth(key))).json()
    validator("Video").validate(done)
    assert done["status"] == "completed" and done["size"] == "1280x720" and done["seconds"] == "8"
    listed = (await client.get("/v1/video/generations", headers=auth(key))).json()
    validator("GenerationList").validate(listed)
    assert listed["data"][0]["prompt"] == "A fox" and listed["data"][0]["cost"] == "3.20"
