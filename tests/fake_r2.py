"""An S3 endpoint standing in for Cloudflare R2: moto's server, real HTTP on loopback."""

from __future__ import annotations

import uuid

import boto3
from moto.server import ThreadedMotoServer

from tests.conftest import free_port

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
