"""A fake of the Vertex AI Veo endpoints that google-genai calls, served over real HTTP on loopback.

It implements `…/models/{model}:predictLongRunning` (start) and `…:fetchPredictOperation` (poll) with
the JSON shapes Vertex AI returns, and can be scripted: latency, HTTP errors on start or poll,
safety filtering, operations it forgets, and videos returned inline or as a URI.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lunos_events.providers.render import render_video
from tests.loopback_server import LoopbackServer

API_KEY = "fake-vertex-express-key"
ACCESS_TOKEN = "fake-oauth-access-token"  # handed out by the fake token endpoint (project mode)
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
START = re.compile(
    r"^v1beta1/(?:projects/([^/]+)/locations/([^/]+)/)?publishers/google/models/([^/:]+):predictLongRunning$"
)
FETCH = re.compile(r"^v1beta1/(.+/models/[^/:]+):fetchPredictOperation$")
BLOCK_MARKER = "#fake-google-blocked"
SAFETY_REASON = "The prompt could not be submitted: it may violate our usage guidelines. Code 58061214"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class FakeOperation:
    name: str
    model: str
    prompt: str
    parameters: dict[str, Any]
    created: float
    polls: int = 0
    key: str | None = None  # the API key that started it (and alone may poll it)
    seq: int = 0  # its place in start order (paced completions finish in this order)


@dataclass
class KeyQuota:
    """One more express-mode API key, with Veo's quotas: starts per minute and operations running."""

    per_minute: int | None = None
    max_running: int | None = None
    revoked: bool = False  # starts answer 403 (polls of what it started still work)
    starts: list[float] = field(default_factory=list)
    peak_running: int = 0
    refused: int = 0  # 429s handed out


@dataclass
class FakeGoogle:
    """The scriptable state; tests change the attributes while the server runs."""

    latency_seconds: float = 0.3
    response_delay_seconds: float = 0.0
    start_errors: list[int] = field(default_factory=list)  # consumed one per start request
    poll_errors: list[int] = field(default_factory=list)  # consumed one per poll request
    output: str = "bytes"  # or "uri"
    base_url: str = ""
    operations: dict[str, FakeOperation] = field(default_factory=dict)
    start_requests: list[dict[str, Any]] = field(default_factory=list)
    poll_requests: int = 0
    # The bytes handed out: the first sample under the operation's id, the others under `{id}-{n}`.
    videos: dict[str, bytes] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)  # every API path called, in order
    token_requests: int = 0
    keys: dict[str, KeyQuota] = field(default_factory=dict)  # more API keys besides API_KEY
    # Paced completions (benchmarks): operations finish in start order, this many per second from
    # `completions_from` (time.monotonic(); None: nothing finishes yet), whatever latency_seconds says.
    completions_per_second: float | None = None
    completions_from: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key_seqs: dict[str | None, list[int]] = field(default_factory=dict)  # per key, in start order
    _starts: int = 0

    def video_for(self, prompt: str) -> bytes:
        """A real small MP4 whose picture depends on the prompt."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "v.mp4"
            render_video(path, prompt, width=160, height=96, fps=8, seconds=1)
            return path.read_bytes()

    def forget_all(self) -> None:
        self.operations.clear()

    # -- HTTP -----------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        if self.response_delay_seconds:
            await anyio.sleep(self.response_delay_seconds)
        path = request.path_params["path"]
        if request.method == "GET" and path.startswith("files/"):
            data = self.videos.get(path.removeprefix("files/"))
            return Response(data, media_type="video/mp4") if data else error(404, "No such file")
        if request.method == "POST" and path == "token":
            return await self.token(request)
        bearer = request.headers.get("authorization") == f"Bearer {ACCESS_TOKEN}"
        key = request.headers.get("x-goog-api-key")
        if key != API_KEY and key not in self.keys and not bearer:
            return error(401, "Request had invalid authentication credentials", "UNAUTHENTICATED")
        self.paths.append(path)
        body = await request.json()
        if match := START.match(path):
            if key in self.keys and (refusal := self.quota_refusal(key)):
                return refusal
            return await self.start(match.group(3), body, match.group(1), match.group(2), key)
        if match := FETCH.match(path):
            return await self.fetch(match.group(1), body, key)
        return error(404, f"Unknown method {request.method} {path}")

    async def token(self, request: Request) -> Response:
        """OAuth token endpoint for application default credentials (a service account key file)."""
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != JWT_GRANT or not form.get("assertion"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        self.token_requests += 1
        return JSONResponse({"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})

    def credentials_file(self, directory: Path) -> Path:
        """A service account key file (a real RSA key) whose access tokens come from this fake."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path = directory / "service-account.json"
        info = {
            "type": "service_account",
            "project_id": "my-project",
            "private_key_id": "fake-key-id",
            "private_key": pem,
            "client_email": "lunos@my-project.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": f"{self.base_url}/token",
        }
        path.write_text(json.dumps(info))
        return path

    def released(self, now: float) -> int:
        """Paced: how many operations (in start order) have finished by `now`."""
        if self.completions_per_second is None or self.completions_from is None:
            return 0
        return max(0, int((now - self.completions_from) * self.completions_per_second))

    def finished(self, op: FakeOperation, now: float) -> bool:
        if self.completions_per_second is not None:
            return op.seq < self.released(now)
        return now - op.created >= self.latency_seconds

    def running(self, key: str) -> int:
        now = time.monotonic()
        if self.completions_per_second is not None:
            # Paced: what has finished is a prefix of the start order (a count, not a scan of them all).
            seqs = self._key_seqs.get(key, [])
            return len(seqs) - bisect.bisect_left(seqs, self.released(now))
        return sum(1 for op in self.operations.values() if op.key == key and not self.finished(op, now))

    def quota_refusal(self, key: str) -> Response | None:
        """403 for a revoked key, 429 past its quotas; else the start counts against them."""
        quota = self.keys[key]
        if quota.revoked:
            return error(403, "Permission denied on resource project", "PERMISSION_DENIED")
        with self._lock:
            now = time.monotonic()
            quota.starts = [t for t in quota.starts if now - t < 60]
            running = self.running(key)
            over_rate = quota.per_minute is not None and len(quota.starts) >= quota.per_minute
            if over_rate or (quota.max_running is not None and running >= quota.max_running):
                quota.refused += 1
                return error(429, "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests")
            quota.starts.append(now)
            quota.peak_running = max(quota.peak_running, running + 1)
        return None

    async def start(
        self,
        model: str,
        body: dict[str, Any],
        project: str | None = None,
        location: str | None = None,
        key: str | None = None,
    ) -> Response:
        with self._lock:
            self.start_requests.append(body)
            code = self.start_errors.pop(0) if self.start_errors else None
        if code:
            return error(code, "Quota exceeded" if code == 429 else "Backend error")
        instance, parameters = body["instances"][0], body.get("parameters", {})
        if not instance.get("prompt"):
            return error(400, "prompt is required")
        resource = f"projects/{project or 'fake-project'}/locations/{location or 'us-central1'}"
        resource += f"/publishers/google/models/{model}"
        name = f"{resource}/operations/{uuid.uuid4()}"
        with self._lock:
            seq, self._starts = self._starts, self._starts + 1
            self._key_seqs.setdefault(key, []).append(seq)
            self.operations[name] = FakeOperation(
                name, model, instance["prompt"], parameters, time.monotonic(), key=key, seq=seq
            )
        return JSONResponse({"name": name})

    async def fetch(self, resource: str, body: dict[str, Any], key: str | None = None) -> Response:
        with self._lock:
            self.poll_requests += 1
            code = self.poll_errors.pop(0) if self.poll_errors else None
        if code:
            return error(code, "Backend error")
        name = body.get("operationName", "")
        op = self.operations.get(name)
        # Another key's operation is not found, as another project's is at Google.
        other_key = op is not None and op.key in self.keys and op.key != key
        if op is None or other_key or not name.startswith(resource + "/operations/"):
            return error(404, f"Operation {name} not found")
        op.polls += 1
        if not self.finished(op, time.monotonic()):
            return JSONResponse({"name": name, "done": False})
        samples = op.parameters.get("sampleCount", 1)
        if BLOCK_MARKER in op.prompt:
            response = {"raiMediaFilteredCount": samples, "raiMediaFilteredReasons": [SAFETY_REASON]}
            return JSONResponse({"name": name, "done": True, "response": response})
        videos = []
        for index in range(samples):
            key = name.rsplit("/", 1)[-1] + (f"-{index + 1}" if index else "")
            if key not in self.videos:
                self.videos[key] = await anyio.to_thread.run_sync(self.video_for, f"{op.prompt}#{index}")
            if self.output == "uri":
                videos.append({"gcsUri": f"{self.base_url}/files/{key}", "mimeType": "video/mp4"})
            else:
                encoded = base64.b64encode(self.videos[key]).decode()
                videos.append({"bytesBase64Encoded": encoded, "mimeType": "video/mp4"})
        response = {"@type": "type.googleapis.com/GenerateVideoResponse", "videos": videos}
        return JSONResponse({"name": name, "done": True, "response": response})


def error(code: int, message: str, status: str | None = None) -> JSONResponse:
    status = status or STATUS_NAMES.get(code, "UNKNOWN")
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=code)


class FakeGoogleServer(LoopbackServer):
    def __init__(self, fake: FakeGoogle) -> None:
        super().__init__(Starlette(routes=[Route("/{path:path}", fake.handle, methods=["GET", "POST"])]))
        self.fake = fake
        fake.base_url = self.url
