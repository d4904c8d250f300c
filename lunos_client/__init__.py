"""The Python client of the lunos-events API: `LunosClient` (blocking) and `AsyncLunosClient`.

A library of its own, usable without the server: it imports nothing from the server package and
depends only on httpx (and anyio, which httpx already brings) plus the standard library.

from lunos_client import LunosClient

with LunosClient(api_key="lun_...", app_id="my-app") as client:
    video = client.video.generate_and_wait("A lion in the savannah", max_wait=300)
    client.video.download(video, "lion.mp4")
"""

from __future__ import annotations

from lunos_client.async_client import AsyncLunosClient, AsyncVideoResource
from lunos_client.config import DEFAULT_BASE_URL, ClientConfig
from lunos_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GenerationFailedError,
    InsufficientBalanceError,
    LunosClientError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    VideoNotReadyError,
    WaitTimeoutError,
)
from lunos_client.models import (
    CANCELLED,
    COMPLETED,
    DELETED,
    FAILED,
    FINAL_STATUSES,
    PENDING,
    PROCESSING,
    PROGRESS_EVENT,
    VideoEvent,
    VideoGeneration,
    VideoPage,
    VideoStatus,
)
from lunos_client.sync_client import LunosClient, VideoResource

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "DEFAULT_BASE_URL",
    "DELETED",
    "FAILED",
    "FINAL_STATUSES",
    "PENDING",
    "PROCESSING",
    "PROGRESS_EVENT",
    "APIConnectionError",
    "APIError",
    "AsyncLunosClient",
    "AsyncVideoResource",
    "AuthenticationError",
    "BadRequestError",
    "ClientConfig",
    "ConflictError",
    "GenerationFailedError",
    "InsufficientBalanceError",
    "LunosClient",
    "LunosClientError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "VideoEvent",
    "VideoGeneration",
    "VideoNotReadyError",
    "VideoPage",
    "VideoResource",
    "VideoStatus",
    "WaitTimeoutError",
]
