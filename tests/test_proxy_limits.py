"""The compose file's Caddy configuration, run by a real Caddy in front of the API, over raw sockets.

Only the addresses are changed (the API's loopback port instead of `api:8787`); limits and timeouts
are the file's own. Locally a missing `caddy` skips; in CI (LUNOS_CI=1, where .ci/run installs
Debian's caddy) it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lunos_events.runtime import Runtime
from lunos_events.settings import Settings
from tests.conftest import auth, create_user, free_port
from tests.processes import PROJECT_ROOT
from tests.raw_http import RawConnection

pytestmark = pytest.mark.anyio

READ_HEADER_SECONDS = 5  # the file's read_header


def caddy_or_skip() -> str:
    found = shutil.which("caddy")
    if found is None:
        if os.environ.get("LUNOS_CI"):
            pytest.fail("caddy is missing: .ci/run installs Debian's caddy")
        pytest.skip("caddy is not installed")
    return found


def compose_caddyfile() -> str:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    (mounted,) = compose["services"]["proxy"]["configs"]
    return compose["configs"][mounted["source"]]["content"]


@pytest.fixture
def proxy(tmp_path: Path, settings: Settings) -> Iterator[int]:
    caddy = caddy_or_skip()
    port = free_port()
    text = compose_caddyfile()
    assert ":8787 {" in text and "reverse_proxy api:8787" in text
    text = text.replace("api:8787", f"127.0.0.1:{settings.port}").replace(":8787 {", f":{port} {{")
    config = tmp_path / "Caddyfile"
    config.write_text(text)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    process = subprocess.Popen(
        [caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"caddy did not start: {process.communicate()[0]}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()  # the file's grace_period bounds how long open connections hold it
        process.communicate(timeout=15)


@pytest.mark.settings(sse_heartbeat_seconds=0.5)
async def test_the_proxy_bounds_heads_and_bodies_and_lets_streams_run(service: Runtime, proxy: int) -> None:
    key = await create_user(service, "proxied")
    headers = [(name, value.encode()) for name, value in auth(key).items()]

    conn = await RawConnection.open("127.0.0.1", proxy)
    await conn.request("GET", "/v1/account", headers)
    assert (await conn.response()).status == 200
    await conn.request("POST", "/v1/webhooks", headers, b"{" + b" " * (70 * 1024) + b"}")
    # Refused at the edge: 413 from Caddy 2.7 on (the compose image); Debian's 2.6 says 502 for
    # it (caddyserver/caddy#5652).
    assert (await conn.response()).status in (413, 502)
    await conn.close()

    conn = await RawConnection.open("127.0.0.1", proxy)
    await conn.request("GET", "/healthz", [("X-Big", b"a" * (100 * 1024))])
    refused = await conn.response()
    assert refused.status == 431
    assert "json" not in refused.headers.get("content-type", "")  # Caddy's own answer, not the API's
    await conn.close()

    idle = await RawConnection.open("127.0.0.1", proxy)
    stream = await RawConnection.open("127.0.0.1", proxy)
    await stream.request("GET", "/v1/video/events", headers)
    assert (await stream.response()).status == 200
    started = time.monotonic()
    assert await idle.closed_by_server(timeout=READ_HEADER_SECONDS + 3)
    assert time.monotonic() - started >= READ_HEADER_SECONDS - 1
    # The stream outlived the head timeout, and its heartbeats still come through.
    received = b""
    while received.count(b": heartbeat") < 2:
        received += await asyncio.wait_for(stream.reader.read(1024), timeout=5)
    await idle.close()
    await stream.close()
