"""The official npm client, `@lunos/client` 1.5.0 (pinned by tests/npm_client/package-lock.json),
against a live server: called as the reference document's JavaScript example calls it, it submits,
polls through `processing` to `completed`, and the video URL it gets plays.

The package takes the server's address through its public `baseUrl` option; nothing in it is
changed. It is installed once per lockfile under tmp/npm-client/ (reruns reuse it). Locally a
missing node or npm, or no registry, skips; in CI (LUNOS_CI=1) it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import select

from lunos_events.runtime import Runtime
from lunos_events.store.models import Operation
from tests.conftest import create_user
from tests.helpers import probe_mp4
from tests.processes import PROJECT_ROOT

pytestmark = pytest.mark.anyio

SOURCE = Path(__file__).parent / "npm_client"
PROJECT_FILES = ("package.json", "package-lock.json", ".npmrc")
CACHE = PROJECT_ROOT / "tmp" / "npm-client"


def unavailable(reason: str) -> None:
    if os.environ.get("LUNOS_CI"):
        pytest.fail(f"{reason} (CI installs node and npm and reaches the npm registry)")
    pytest.skip(reason)


def installed_client() -> Path:
    """A folder with the pinned package installed (`npm ci`, once per lockfile) and the script."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        unavailable("node or npm is not installed")
    digest = hashlib.sha256(b"".join((SOURCE / name).read_bytes() for name in PROJECT_FILES)).hexdigest()
    folder = CACHE / digest[:16]
    if not (folder / "node_modules" / "@lunos" / "client" / "package.json").is_file():
        # Installed beside, then renamed: a run that dies mid-install leaves no half folder behind
        # under the name a later run trusts.
        staging = CACHE / f"{digest[:16]}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in PROJECT_FILES:
            shutil.copy(SOURCE / name, staging / name)
        result = subprocess.run(
            [str(npm), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            unavailable(f"npm ci failed: {result.stderr[-2000:]}")
        try:
            staging.rename(folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another run installed it meanwhile
    installed = json.loads((folder / "node_modules" / "@lunos" / "client" / "package.json").read_text())
    assert installed["version"] == "1.5.0"
    # The script sits beside node_modules: ES modules resolve packages from their own folder.
    shutil.copy(SOURCE / "reference_client.mjs", folder / "reference_client.mjs")
    return folder


# A run long enough to be seen processing by polls every 0.2 s.
@pytest.mark.settings(simulator_latency_seconds=2.0)
async def test_the_official_npm_client_works_unchanged(service: Runtime, tmp_path: Path) -> None:
    folder = await anyio.to_thread.run_sync(installed_client)
    key = await create_user(service, "user123")
    base = service.settings.resolved_public_base_url()
    env = dict(os.environ, LUNOS_API_KEY=key, LUNOS_BASE_URL=base, POLL_MS="200", MAX_WAIT_MS="60000")
    with anyio.fail_after(90):
        result = await anyio.run_process(
            ["node", str(folder / "reference_client.mjs")], env=env, cwd=tmp_path, check=False
        )
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    steps = [json.loads(line) for line in output.splitlines()]

    # The submit answers in the reference document's shape.
    name, created = steps[0]["step"], steps[0]["body"]
    assert name == "generateVideo" and created["status"] == "pending"
    assert created["id"].startswith("video-op:user123:")
    assert created["operation_name"].startswith("operations/")

    # Polled through processing (with its estimate) to completed, never backwards.
    polls = [step["body"] for step in steps if step["step"] == "getVideoStatus"]
    seen = [poll["status"] for poll in polls]
    assert "processing" in seen and seen[-1] == "completed", seen
    assert seen == sorted(seen, key=["pending", "processing", "completed"].index), seen
    for poll in polls:
        if poll["status"] == "processing":
            assert 1 <= poll["progress"] <= 99 and poll["eta_seconds"] >= 1, poll
    final = polls[-1]
    assert final["id"] == created["id"] and final["progress"] == 100

    # generateAndWait (the document's convenience call) ends with a completed video too.
    waited = steps[-1]
    assert waited["step"] == "generateAndWait" and waited["body"]["status"] == "completed"

    # Both video URLs serve playable MP4s.
    async with httpx.AsyncClient(timeout=30) as http:
        for url in (final["video_url"], waited["body"]["video_url"]):
            video = await http.get(url)
            assert video.status_code == 200 and probe_mp4(video.content)["codec"] == "h264"

    # The client's appId went out as X-App-ID: the operations are the app's.
    async with service.store.reading() as conn:
        rows = (await conn.execute(select(Operation.id, Operation.app_id))).all()
    assert {row.id: row.app_id for row in rows} == {
        created["id"]: "my-video-app",
        waited["body"]["id"]: "your-app-id",
    }
