"""`lunos-events dev` as a newcomer runs it: one command, embedded Redis, a printed key, clean Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import VEO, free_port
from tests.processes import spawn, wait_for_exit

FAST = {
    "LUNOS_SIMULATOR_LATENCY_SECONDS": "0.3",
    "LUNOS_SIMULATOR_WIDTH": "320",
    "LUNOS_SIMULATOR_HEIGHT": "180",
    "LUNOS_POLL_INTERVAL_SECONDS": "0.1",
}


def start_dev(tmp_path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")} | FAST
    process = spawn("dev", "--port", str(port), env=env, cwd=tmp_path)
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Press Ctrl-C to stop." in line:
            return process, lines
    process.kill()
    raise AssertionError("dev did not start:\n" + "\n".join(lines))


def assert_private(data_dir: Path) -> None:
    names = set()
    for root, _dirs, files in os.walk(data_dir):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for name in files:
            names.add(name)
            assert stat.S_IMODE(os.stat(Path(root, name)).st_mode) == 0o600, Path(root, name)
    assert {"lunos.db", "lunos.db-wal", "lunos.db-shm", "dev-api-key", "stream-token-secret"} <= names
    assert any(name.endswith(".mp4") for name in names)


def redis_port(lines: list[str]) -> int:
    line = next(line for line in lines if "embedded redis-server at" in line)
    return int(line.rsplit(":", 1)[1].split("/")[0])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_runs_everything_and_stops_cleanly(tmp_path) -> None:
    port = free_port()
    process, lines = start_dev(tmp_path, port)
    try:
        key = lines[lines.index("Development account 'dev', API key:") + 1].strip()
        assert any(f'-H "Authorization: Bearer {key}"' in line for line in lines)
        embedded = redis_port(lines)
        assert port_open(embedded)

        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}", "X-App-ID": "newcomer"}
        body = {"model": VEO, "prompt": "A cinematic shot of a majestic lion in the savannah."}
        op_id = httpx.post(f"{base}/v1/video/generations", headers=headers, json=body).json()["id"]
        deadline = time.monotonic() + 30
        while (status := httpx.get(f"{base}/v1/video/generations/{op_id}", headers=headers).json())[
            "status"
        ] in ("pending", "processing"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status["status"] == "completed"
        assert httpx.get(status["video_url"]).headers["content-type"] == "video/mp4"

        # `dev` leaves /metrics open, and says so.
        assert any(line.startswith("  metrics:  /metrics open to anyone") for line in lines)
        assert httpx.get(f"{base}/metrics").status_code == 200

        # The embedded Redis wants its password: any other local user gets nowhere.
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=embedded, socket_timeout=5).ping()
        assert not any("@127.0.0.1" in line for line in lines)  # the banner does not print it

        # Owner-only data: the directory, SQLite and its WAL/SHM files, keys, videos.
        assert_private(tmp_path / ".lunos")

        # `dev` says it lets webhooks reach local receivers, and does.
        assert "  webhooks: private and loopback targets allowed (development only)" in lines
        local_hook = {"url": f"http://127.0.0.1:{free_port()}/hooks"}
        assert httpx.post(f"{base}/v1/webhooks", headers=headers, json=local_hook).status_code == 201
    finally:
        process.send_signal(signal.SIGINT)
        assert wait_for_exit(process, 20) == 0
    assert not port_open(port)
    assert not port_open(embedded)  # no orphan redis-server

    # A second start keeps the data and prints the same working key; it tightens what was loosened.
    (tmp_path / ".lunos" / "lunos.db").chmod(0o644)
    (tmp_path / ".lunos").chmod(0o755)
    process, lines = start_dev(tmp_path, port)
    try:
        assert f"  {key}" in lines
        again = httpx.get(f"{base}/v1/video/generations/{op_id}", headers=headers).json()
        assert again["status"] == "completed"
        assert_private(tmp_path / ".lunos")
    finally:
        process.send_signal(signal.SIGINT)
        assert wait_for_exit(process, 20) == 0


def test_dev_api_key_pins_the_key(tmp_path) -> None:
    import os

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")} | FAST
    env["LUNOS_DEV_API_KEY"] = "lun_" + secrets.token_urlsafe(32)
    process = spawn("dev", "--port", str(port), env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/v1/account",
                    headers={"Authorization": f"Bearer {env['LUNOS_DEV_API_KEY']}"},
                )
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert response.json()["id"] == "dev"
    finally:
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, 20) == 0


@pytest.mark.parametrize(
    "weak",
    [
        "lun_pinned-dev",
        "lun_" + "password" * 8,
        "lun_0123456789abcdef",
        "lun_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ],
)
def test_a_guessable_pinned_key_is_refused(tmp_path, weak: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")} | FAST
    env["LUNOS_DEV_API_KEY"] = weak
    process = spawn("dev", "--port", str(free_port()), env=env, cwd=tmp_path)
    assert wait_for_exit(process, 30) == 1
    assert process.stdout is not None
    output = process.stdout.read()
    assert "LUNOS_DEV_API_KEY is too easy to guess" in output and "128" in output
    assert "Traceback" not in output
    assert not (tmp_path / ".lunos").exists()  # refused before anything was created
