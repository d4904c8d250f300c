"""Delay lists written as text, such as `"5s,5m,30m,2h"`: stdlib only, so settings can use it.

Lives outside `lunos_events.webhooks` so that validating the settings imports nothing of the webhook
machinery (settings <-> webhooks would otherwise be a package cycle).
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_schedule(text: str) -> tuple[float, ...]:
    """`"5s,5m,30m,2h"` → (5.0, 300.0, 1800.0, 7200.0). An empty text means no retries."""
    delays: list[float] = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _DELAY.match(part)
        if match is None:
            raise ValueError(f"bad delay {part!r} in the webhook retry schedule (use e.g. 5s, 5m, 2h)")
        delays.append(float(match.group(1)) * _UNITS[match.group(2)])
    return tuple(delays)
