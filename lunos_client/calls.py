"""The API's requests, described once as data and run by either transport (sync or async)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from lunos_client.models import VideoGeneration, VideoPage, VideoStatus

# Covariant: a call read as a VideoStatus is also a call whose answer is some object.
T_co = TypeVar("T_co", covariant=True)

GENERATIONS = "/v1/video/generations"
ESTIMATES = "/v1/video/estimates"
ACCOUNT_EVENTS = "/v1/video/events"
IDEMPOTENCY_KEY = "Idempotency-Key"
# Methods that may be sent twice with the same effect; anything else needs an Idempotency-Key.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def _json(response: httpx.Response) -> Any:
    return response.json()


@dataclass(frozen=True)
class Call(Generic[T_co]):
    """One request: what to send and how to read a successful answer."""

    method: str
    url: str  # a path under the base URL, or an absolute URL (events_url, video_url)
    parse: Callable[[httpx.Response], T_co] = _json
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # None: the client's timeout

    @property
    def retry_safe(self) -> bool:
        """A retry may repeat the effect only where the method or an Idempotency-Key allows it."""
        return self.method in IDEMPOTENT_METHODS or IDEMPOTENCY_KEY in self.headers


def operation_path(operation_id: str) -> str:
    # Ids contain ':' (video-op:user:ms), which is legal in a path segment; '/' and '?' are not.
    return f"{GENERATIONS}/{quote(operation_id, safe=':@')}"


def _app_header(app_id: str | None) -> dict[str, str]:
    return {"X-App-ID": app_id} if app_id is not None else {}


def _status(response: httpx.Response) -> VideoStatus:
    return VideoStatus.from_json(response.json())


def submit(body: dict[str, Any], *, idempotency_key: str | None, app_id: str | None) -> Call[VideoGeneration]:
    key = idempotency_key or new_idempotency_key()
    return Call(
        "POST",
        GENERATIONS,
        lambda response: VideoGeneration.from_json(response.json()),
        json=body,
        headers={IDEMPOTENCY_KEY: key, **_app_header(app_id)},
    )


def estimate(body: dict[str, Any], *, app_id: str | None) -> Call[dict[str, Any]]:
    """POST /v1/video/estimates: charges nothing, so it is safe to send again."""
    return Call(
        "POST", ESTIMATES, json=body, headers={IDEMPOTENCY_KEY: new_idempotency_key(), **_app_header(app_id)}
    )


def status(operation_id: str, *, app_id: str | None = None) -> Call[VideoStatus]:
    return Call("GET", operation_path(operation_id), _status, headers=_app_header(app_id))


def cancel(operation_id: str, *, idempotency_key: str | None = None) -> Call[VideoStatus]:
    key = idempotency_key or new_idempotency_key()
    return Call("POST", f"{operation_path(operation_id)}/cancel", _status, headers={IDEMPOTENCY_KEY: key})


def delete(operation_id: str) -> Call[VideoStatus]:
    """DELETE is idempotent: a retry after a lost answer gets the same `deleted` status."""
    return Call("DELETE", operation_path(operation_id), _status)


def list_generations(
    *, status: str | None, app_id: str | None, limit: int | None, after: str | None
) -> Call[VideoPage]:
    given = {"status": status, "app_id": app_id, "limit": limit, "after": after}
    params = {name: str(value) for name, value in given.items() if value is not None}
    return Call("GET", GENERATIONS, lambda response: VideoPage.from_json(response.json()), params=params)


def operation_events(operation_id: str) -> Call[None]:
    return Call("GET", f"{operation_path(operation_id)}/events", headers={"Accept": "text/event-stream"})


def account_events(app_id: str | None) -> Call[None]:
    return Call("GET", ACCOUNT_EVENTS, headers={"Accept": "text/event-stream", **_app_header(app_id)})


def stream_url(url: str) -> Call[None]:
    """A stream at a URL the server handed out (`events_url`, which carries its own token)."""
    return Call("GET", url, headers={"Accept": "text/event-stream"})


def fetch(url: str) -> Call[None]:
    return Call("GET", url)
