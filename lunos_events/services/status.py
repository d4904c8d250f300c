"""The status object: what `GET /v1/video/generations/{id}` returns, and what events and webhooks carry."""

from __future__ import annotations

from typing import Any

from lunos_events.store.models import COMPLETED, FAILED

# Not a status change: a processing operation's estimated progress, at most every few seconds.
PROGRESS_EVENT = "video.progress"


def status_object(
    op_id: str,
    status: str,
    video_url: str | None,
    error: str | None,
    error_code: str | None = None,
    outcome: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`outcome` adds video_urls and thumbnail_url to a completed status, the safety details to a
    failed one; `timing` adds when it was created, started and ended and, while it runs, its queue
    position, progress and ETA (services/progress.py). `video_url` and `error` keep the reference
    document's shape."""
    body: dict[str, Any] = {"id": op_id, "status": status}
    if status == COMPLETED:
        body["video_url"] = video_url
    elif status == FAILED or error:
        body["error"] = error
        if error_code is not None:
            body["error_code"] = error_code
    if timing:
        body.update(timing)
    if outcome:
        body.update(outcome)
    return body


def event_type(status: str) -> str:
    return f"video.{status}"
