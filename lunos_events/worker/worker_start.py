"""Starting an operation in the worker: the one whose image URLs must be fetched first.

Its submit stored the inputs (with the URLs) and returned; the tracking job fetches each image
through the SSRF guard, checks it, stores it as data in place of the URL (a restart does not fetch
again), starts the provider and records its operation name.
"""

from __future__ import annotations

import logging

from lunos_events.errors import INPUT_INVALID, INPUT_UNREACHABLE
from lunos_events.logs import operation_context
from lunos_events.runtime import Runtime
from lunos_events.services.image_fetch import InputInvalid, InputUnreachable
from lunos_events.services.input_store import INPUTS, InputsMissing, fetch_inputs
from lunos_events.store.models import FAILED, Operation

log = logging.getLogger(__name__)


async def start_in_worker(rt: Runtime, op: Operation) -> float | None:
    """Fetch, check, start (or queue); returns the seconds until the first poll, or None once it failed."""
    settings = rt.settings
    finish = rt.generations.lifecycle.finish
    with operation_context(op.id):
        try:
            await fetch_inputs(
                rt.storage,
                op.parameters[INPUTS],
                allow_private=settings.input_url_allow_private,
                max_bytes=settings.max_image_bytes,
                fetch_timeout_seconds=settings.input_fetch_timeout_seconds,
            )
        except InputUnreachable as exc:
            await finish(
                op.id,
                FAILED,
                error=f"An input image could not be fetched: {exc}",
                error_code=INPUT_UNREACHABLE,
                refund=True,
            )
            return None
        except (InputInvalid, InputsMissing) as exc:
            await finish(
                op.id,
                FAILED,
                error=f"An input image is not usable: {exc}",
                error_code=INPUT_INVALID,
                refund=True,
            )
            return None
    outcome, _ = await rt.generations.starter.admit(op)
    return settings.poll_interval_seconds if outcome in ("started", "queued") else None
