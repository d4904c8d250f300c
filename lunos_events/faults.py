"""Crash points for recovery tests: with LUNOS_FAULT_POINT set, the process SIGKILLs itself there.

Points on the completion path, in order: `provider_done` (video rendered/fetched, not stored),
`stored` (video in storage, database not updated), `committed` (final state and event committed,
event not yet published). On the webhook path: `webhook_sent` (the receiver answered, the attempt
is not recorded yet). Unset in normal operation.
"""

from __future__ import annotations

import os
import signal

from lunos_events.settings import Settings


def crash_point(settings: Settings, point: str) -> None:
    if settings.fault_point == point:
        os.kill(os.getpid(), signal.SIGKILL)
