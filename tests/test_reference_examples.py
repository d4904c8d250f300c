"""The reference document's own client examples, run as written against a live server.

Only the base URL and the API key are substituted. Each example polls every 10 s as written, so
these tests take about that long.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import auth, create_user
from tests.helpers import probe_mp4

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parent / "reference_examples"


def localize(name: str, base_url: str, key: str, tmp_path: Path) -> Path:
    text = (EXAMPLES / name).read_text()
    assert "http://localhost:8787" in text and "YOUR_API_KEY" in text
    target = tmp_path / name
    target.write_text(text.replace("http://localhost:8787", base_url).replace("YOUR_API_KEY", key))
    return target


async def run_example(*argv: str) -> str:
    result = await anyio.run_process(list(argv), check=False)
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    return output


async def test_python_and_javascript_examples(service, client: httpx.AsyncClient, tmp_path: Path) -> None:
    key = await create_user(service, "user123")
    base = service.settings.resolved_public_base_url()
    python_example = localize("python_requests.py", base, key, tmp_path)
    js_example = localize("javascript_fetch.mjs", base, key, tmp_path)
    node = shutil.which("node")
    outputs: dict[str, str] = {}

    async def run(name: str, *argv: str) -> None:
        outputs[name] = await run_example(*argv)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(run, "python", sys.executable, str(python_example))
            if node:
                group.start_soon(run, "js", node, str(js_example))

    for name, output in outputs.items():
        assert "Operation ID: video-op:user123:" in output, name
        video_url = output.split("Video URL:")[1].split()[0]
        video = await client.get(video_url)
        assert probe_mp4(video.content)["codec"] == "h264", name
    if not node:
        pytest.skip("node is not installed: the JavaScript example was not run")


async def test_curl_example(service, client: httpx.AsyncClient, tmp_path: Path) -> None:
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    key = await create_user(service, "user123")
    script = localize("curl.sh", service.settings.resolved_public_base_url(), key, tmp_path)
    output = await run_example("bash", str(script))
    first, second = output.split("}", 1)
    submitted = json.loads(first + "}")
    assert submitted["status"] == "pending"
    # The second call names the document's placeholder id, which this account does not own.
    assert json.loads(second) == {"error": "Operation not found"}
    status = await client.get(f"/v1/video/generations/{submitted['id']}", headers=auth(key, "your-app-id"))
    assert status.status_code == 200
