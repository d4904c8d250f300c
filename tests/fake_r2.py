"""An S3 endpoint standing in for Cloudflare R2: moto's server, real HTTP on loopback."""

from __future__ import annotations

import uuid

import boto3
import httpx
from moto.server import ThreadedMotoServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import free_port
from tests.loopback_server import LoopbackServer

ACCESS_KEY_ID = "fake-r2-access-key"
SECRET_ACCESS_KEY = "fake-r2-secret-key"


def moto_server() -> tuple[ThreadedMotoServer, str]:
    port = free_port()
    return ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False), f"http://127.0.0.1:{port}"


def create_bucket(endpoint: str) -> str:
    name = f"videos-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def r2_overrides(endpoint: str, bucket: str, **extra: object) -> dict[str, object]:
    return {
        "storage": "r2",
        "r2_endpoint_url": endpoint,
        "r2_bucket": bucket,
        "r2_access_key_id": ACCESS_KEY_ID,
        "r2_secret_access_key": SECRET_ACCESS_KEY,
        **extra,
    }


SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FlakyS3Proxy(LoopbackServer):
    """Forwards to the S3 endpoint, answering 503 to the next `failures` requests that write."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream = upstream
        self.failures = failures
        self.served_errors = 0
        super().__init__(
            Starlette(
                routes=[Route("/{path:path}", self.forward, methods=["GET", "PUT", "POST", "HEAD", "DELETE"])]
            )
        )

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        if request.method in ("PUT", "POST") and self.failures > 0:
            self.failures -= 1
            self.served_errors += 1
            return Response(SLOW_DOWN, status_code=503, media_type="application/xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with httpx.AsyncClient(base_url=self.upstream) as client:
            upstream = await client.request(
                request.method, request.url.path, params=request.url.query, headers=headers, content=body
            )
        passed = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=passed)
