"""The status object: what `GET /v1/video/generations/{id}` returns, and what events and webhooks carry."""

from __future__ import annotations

from typing import Any

from lunos_events.store.models import COMPLETED, FAILED


def status_object(op_id: str, status: str, video_url: str | None, error: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": op_id, "status": status}
    if status == COMPLETED:
        body["video_url"] = video_url
    elif status == FAILED or error:
        body["error"] = error
    return body


def event_type(status: str) -> str:
    return f"video.{status}"
