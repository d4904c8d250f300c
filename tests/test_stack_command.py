"""`lunos-events stack` as a user runs it: a generation through nginx, stored in S3, then Ctrl-C
stops every process it started (nginx's workers and PostgreSQL's backends included)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from lunos_events.media.images import encode_image
from tests.conftest import VEO, free_port
from tests.processes import command, stack_workdir

READY = "Ctrl-C stops everything."


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, whatever its session or process group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.timeout(240)
def test_stack_serves_through_nginx_and_ctrl_c_leaves_nothing_running() -> None:
    workdir = stack_workdir("lunos-stack-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")}
    env |= {
        "LUNOS_SIMULATOR_LATENCY_SECONDS": "0.5",
        "LUNOS_SIMULATOR_WIDTH": "64",
        "LUNOS_PROVIDER": "local",
    }
    env |= {
        "LUNOS_SIMULATOR_HEIGHT": "64",
        "LUNOS_SIMULATOR_VIDEO_SECONDS": "1",
        "LUNOS_POLL_INTERVAL_SECONDS": "0.2",
    }
    stack = subprocess.Popen(
        command("stack", "--port", str(port), "--data-dir", str(workdir / "s"), "--workers", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        assert stack.stdout is not None
        for line in stack.stdout:
            lines.append(line.rstrip())
            if line.strip() == READY:
                break
        assert lines and lines[-1] == READY, "\n".join(lines)
        key = lines[-2]
        started = descendants(stack.pid)
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in started if alive(pid)}
        assert {"nginx", "redis-server", "postgres"} <= names, names

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            headers = {"Authorization": f"Bearer {key}"}
            created = client.post(
                "/v1/video/generations", json={"model": VEO, "prompt": "a lion"}, headers=headers
            )
            assert created.status_code == 200, created.text
            deadline = time.monotonic() + 60
            while (
                status := client.get(f"/v1/video/generations/{created.json()['id']}", headers=headers).json()
            )["status"] in ("pending", "processing"):
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
            assert status["status"] == "completed", status
            video = httpx.get(status["video_url"], timeout=30)  # from the S3 server (moto)
            assert video.status_code == 200 and video.content[4:8] == b"ftyp"
            # A submit carrying a ~1 MB image passes the proxy (it is larger than a plain body may be).
            noise = np.random.default_rng(7).integers(0, 256, (600, 600, 3), dtype=np.uint8)
            image = {"data": base64.b64encode(encode_image(noise, "png")).decode(), "mimeType": "image/png"}
            body = {"model": VEO, "prompt": "from a picture", "parameters": {"image": image}}
            with_image = client.post("/v1/video/generations", json=body, headers=headers)
            assert with_image.status_code == 200, with_image.text
            # Past the largest submit, nginx refuses it itself, as JSON.
            too_big = client.post("/v1/video/generations", content=b"x" * 29_000_000, headers=headers)
            assert too_big.status_code == 413 and too_big.json()["error"]
            assert "nginx" in too_big.headers.get("server", ""), too_big.headers
            huge_head = client.get("/v1/account", headers=headers | {"X-Padding": "x" * 70_000})
            assert huge_head.status_code == 431 and huge_head.json()["error"]

        started |= descendants(stack.pid)
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while [pid for pid in started if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in started if alive(pid)], "left running after Ctrl-C"
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
