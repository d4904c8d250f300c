"""The reference receivers in `webhooks/` (Python/Starlette and Node/node:http + npm standardwebhooks)
as the real receiving backends of end-to-end deliveries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import anyio
import httpx
import pytest

from tests.conftest import auth, create_user, free_port
from tests.helpers import generation_body, status_without_link, wait_for_status
from tests.processes import PROJECT_ROOT
from tests.webhook_receiver import library_signed_headers

pytestmark = pytest.mark.anyio

NODE_DIR = PROJECT_ROOT / "webhooks" / "node"


def receiver_command(kind: str) -> list[str]:
    if kind == "python":
        return [sys.executable, str(PROJECT_ROOT / "webhooks" / "python" / "receiver.py")]
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "standardwebhooks").is_dir():
        if os.environ.get("LUNOS_CI"):
            pytest.fail("node and webhooks/node/node_modules are required in CI (.ci/run installs them)")
        pytest.skip("node or the receiver's npm packages are missing (run `npm ci` in webhooks/node)")
    return [node, str(NODE_DIR / "receiver.mjs")]


class ReceiverProcess:
    """The receiver as a child process; each line it prints is one event it accepted."""

    def __init__(self, kind: str, secret: str, port: int) -> None:
        env = dict(os.environ, WEBHOOK_SECRET=secret, PORT=str(port))
        self.url = f"http://127.0.0.1:{port}/hooks"
        self.process = subprocess.Popen(
            receiver_command(kind), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    async def wait_until_listening(self) -> None:
        with anyio.fail_after(30):
            while True:
                try:
                    async with httpx.AsyncClient() as client:
                        await client.post(self.url, content=b"{}")
                    return
                except httpx.TransportError:
                    assert self.process.poll() is None, "the receiver exited"
                    await anyio.sleep(0.1)

    async def wait_for_events(self, count: int) -> list[dict]:
        with anyio.fail_after(30):
            while len(self.events) < count:
                await anyio.sleep(0.05)
        return self.events

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def signed(secret: str, msg_id: str, body: bytes, at: float | None = None) -> dict[str, str]:
    return {**library_signed_headers(secret, msg_id, body, at), "content-type": "application/json"}


@pytest.mark.settings(webhook_allow_private=True, webhook_rotation_overlap_seconds=3600)
@pytest.mark.parametrize("kind", ["python", "node"])
async def test_reference_receiver_end_to_end(service, client: httpx.AsyncClient, kind: str) -> None:
    key = await create_user(service, f"backend-{kind}")
    port = free_port()
    endpoint = (
        await client.post("/v1/webhooks", headers=auth(key), json={"url": f"http://127.0.0.1:{port}/hooks"})
    ).json()
    receiver = ReceiverProcess(kind, endpoint["secret"], port)
    try:
        await receiver.wait_until_listening()
        op_id = (
            await client.post("/v1/video/generations", headers=auth(key), json=generation_body())
        ).json()["id"]
        final = await wait_for_status(client, op_id, auth(key))
        [event] = await receiver.wait_for_events(1)
        assert (event["type"], event["data"]) == ("video.completed", status_without_link(final))

        [delivery] = (
            await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=auth(key))
        ).json()["data"]
        assert event["id"] == delivery["id"]
        # A redelivery carries the same webhook-id: the receiver accepts it and does not process it twice.
        await client.post(f"/v1/webhooks/deliveries/{delivery['id']}/redeliver", headers=auth(key))
        with anyio.fail_after(30):
            while True:
                log = (
                    await client.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=auth(key))
                ).json()
                if log["status"] == "delivered" and len(log["attempt_log"]) == 2:
                    break
                await anyio.sleep(0.05)
        assert [a["status_code"] for a in log["attempt_log"]] == [200, 200]
        assert "duplicate" in log["attempt_log"][1]["response_body"]

        # Forged, tampered and replayed messages are refused.
        async with httpx.AsyncClient() as raw:
            body = json.dumps(
                {"type": "video.completed", "timestamp": "2026-01-01T00:00:00Z", "data": {}}
            ).encode()
            good = signed(endpoint["secret"], "msg_manual", body)
            assert (
                await raw.post(receiver.url, content=body.replace(b"video", b"audio"), headers=good)
            ).status_code == 400
            other = signed("whsec_" + "QUJD" * 8, "msg_manual", body)
            assert (await raw.post(receiver.url, content=body, headers=other)).status_code == 400
            stale = signed(endpoint["secret"], "msg_manual", body, at=time.time() - 3600)
            assert (await raw.post(receiver.url, content=body, headers=stale)).status_code == 400
            assert (
                await raw.post(receiver.url, content=body, headers={"content-type": "application/json"})
            ).status_code == 400
            assert (await raw.post(receiver.url, content=body, headers=good)).status_code == 200

        # After a rotation the receiver still holds only the old secret: the overlap keeps it working.
        await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret", headers=auth(key))
        await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=auth(key))
        events = await receiver.wait_for_events(3)
        assert [e["type"] for e in events] == ["video.completed", "video.completed", "webhook.test"]
        assert events[1]["id"] == "msg_manual"
        await anyio.sleep(0.3)
        assert len(receiver.events) == 3
    finally:
        receiver.stop()
