"""Storing what a finished generation produced: every sample, and a poster of the first."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import anyio

from lunos_events.faults import crash_point
from lunos_events.ids import poster_key, sample_key
from lunos_events.media.poster import POSTER_CONTENT_TYPE, make_poster
from lunos_events.providers.base import Done
from lunos_events.runtime import Runtime

log = logging.getLogger(__name__)


async def store_outputs(rt: Runtime, video_key: str, result: Done) -> tuple[list[str], str | None]:
    """Store the samples under their fixed keys (a re-run overwrites) and the poster beside the
    first; returns the samples' URLs and the poster's (None if no poster could be made)."""
    try:
        crash_point(rt.settings, "provider_done")
        thumbnail = await _store_poster(rt, video_key, result.video_paths[0])
        for index, path in enumerate(result.video_paths):
            await rt.storage.save(sample_key(video_key, index), path)
    finally:
        for path in result.video_paths:
            path.unlink(missing_ok=True)
    crash_point(rt.settings, "stored")
    urls = [await rt.storage.url_for(sample_key(video_key, i)) for i in range(len(result.video_paths))]
    return urls, thumbnail


async def _store_poster(rt: Runtime, video_key: str, video: Path) -> str | None:
    handle, name = tempfile.mkstemp(suffix=".jpg", dir=video.parent)
    os.close(handle)
    poster = Path(name)
    try:
        await anyio.to_thread.run_sync(make_poster, video, poster)
        key = poster_key(video_key)
        await rt.storage.save(key, poster, POSTER_CONTENT_TYPE)
        return await rt.storage.url_for(key)
    except Exception:
        # A video the provider returned but FFmpeg cannot read still completes; it has no poster.
        log.exception("no poster for %s", video_key)
        return None
    finally:
        await anyio.Path(poster).unlink(missing_ok=True)
