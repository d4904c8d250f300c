"""Whole numbers written in request text (query strings, headers, cursors): ASCII digits only.

`str.isdigit()` also accepts superscripts and other scripts' digits (`²`, `٣`), which `int()`
refuses or reads differently, and `int()` itself takes signs, spaces and underscores. A number a
client sends is ASCII digits and nothing else, within what the database's 64-bit integers hold.
"""

from __future__ import annotations

MAX_INT64 = 2**63 - 1
_MAX_DIGITS = len(str(MAX_INT64))


def ascii_int(text: str, *, max_value: int = MAX_INT64) -> int | None:
    """`text` as a non-negative integer up to `max_value`; None if it is anything else."""
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= max_value else None
