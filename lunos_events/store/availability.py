"""Telling "the database cannot be reached right now" apart from "this statement failed".

While PostgreSQL restarts, a request meets one of: a pooled connection found dead (SQLAlchemy
marks it `connection_invalidated`), a new connection refused by the kernel (`ConnectionRefusedError`,
raised as is by asyncpg), or refused by the server while it shuts down or starts up (SQLSTATE
57P01-57P05, or class 08, connection exception). All of them pass once the server is back, so the
API answers 503 with Retry-After for them; anything else is a real error.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})


def database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and (sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith("08")):
            return True
        orig = getattr(current, "orig", None)
        current = current.__cause__ or (orig if isinstance(orig, BaseException) else None)
    return False
