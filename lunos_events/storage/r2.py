"""Cloudflare R2 (or any S3 endpoint) through aioboto3.

Uploads stream from the file in parts above a size threshold, so memory stays bounded by a few
parts whatever the video size. URLs are public (a custom domain on the bucket) or presigned GETs
that status reads re-sign shortly before they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

import aioboto3
from aiobotocore.config import AioConfig
from boto3.s3.transfer import TransferConfig

if TYPE_CHECKING:  # the stub package (types-aioboto3[s3], a dev dependency) has no runtime module
    from types_aiobotocore_s3.client import S3Client

from lunos_events.storage.base import VIDEO_CONTENT_TYPE


@dataclass(frozen=True)
class R2Config:
    endpoint_url: str
    bucket: str
    access_key_id: str | None
    secret_access_key: str | None
    region: str
    public_base_url: str | None
    presign_expiry_seconds: int
    presign_refresh_seconds: int
    multipart_threshold_bytes: int
    multipart_chunk_bytes: int
    max_attempts: int


class R2Storage:
    def __init__(self, config: R2Config) -> None:
        self._config = config
        self._session = aioboto3.Session()
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._lock = asyncio.Lock()
        self._transfer = TransferConfig(
            multipart_threshold=config.multipart_threshold_bytes,
            multipart_chunksize=config.multipart_chunk_bytes,
            max_concurrency=2,
            max_io_queue=1,  # parts read ahead of the uploads: with the concurrency, this bounds memory
        )

    async def _s3(self) -> S3Client:
        """The S3 client, opened on first use and kept for the life of the process."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    c = self._config
                    self._client = await self._stack.enter_async_context(
                        self._session.client(
                            "s3",
                            endpoint_url=c.endpoint_url,
                            region_name=c.region,
                            aws_access_key_id=c.access_key_id,
                            aws_secret_access_key=c.secret_access_key,
                            config=AioConfig(
                                signature_version="s3v4",
                                retries={"max_attempts": c.max_attempts, "mode": "standard"},
                                s3={"addressing_style": "path"},
                            ),
                        )
                    )
        return self._client

    async def save(self, key: str, source: Path, content_type: str = VIDEO_CONTENT_TYPE) -> None:
        s3 = await self._s3()
        await s3.upload_file(
            str(source),
            self._config.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
            Config=self._transfer,
        )

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        s3 = await self._s3()
        await s3.put_object(Bucket=self._config.bucket, Key=key, Body=data, ContentType=content_type)

    async def read(self, key: str) -> bytes:
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=self._config.bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            raise FileNotFoundError(key) from None
        async with response["Body"] as body:
            return await body.read()

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self._config.bucket, Key=key)  # S3 answers 204 for a missing key

    async def url_for(self, key: str) -> str:
        if self._config.public_base_url:
            return f"{self._config.public_base_url.rstrip('/')}/{quote(key)}"
        return await self.presigned_url(key, self._config.presign_expiry_seconds)

    async def presigned_url(self, key: str, expires_in: int) -> str:
        s3 = await self._s3()
        return await s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._config.bucket, "Key": key}, ExpiresIn=expires_in
        )

    async def refresh_url(self, key: str, url: str) -> str | None:
        """A fresh URL when `url` is a presigned one expiring within the refresh window, else None."""
        expires_at = presigned_expiry(url)
        if expires_at is None:
            return None
        remaining = expires_at - datetime.now(UTC).timestamp()
        if remaining > self._config.presign_refresh_seconds:
            return None
        return await self.url_for(key)

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None


def presigned_expiry(url: str) -> float | None:
    """Unix time at which a SigV4 presigned URL stops working, or None for any other URL."""
    query = parse_qs(urlsplit(url).query)
    try:
        signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed_at.timestamp() + int(query["X-Amz-Expires"][0])
    except (KeyError, ValueError, IndexError):
        return None
