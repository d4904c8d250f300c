"""The admin token: a separate secret from API keys, compared in constant time."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from lunos_events.api.auth import bearer_token, runtime
from lunos_events.errors import InvalidRequest, NotFound, Unauthenticated

ADMIN_DISABLED = "The admin API is disabled: set LUNOS_ADMIN_TOKEN to enable it"
BAD_ADMIN_TOKEN = "Invalid admin token: send 'Authorization: Bearer <LUNOS_ADMIN_TOKEN>'"
MAX_ACTOR_CHARS = 48


def admin_actor(request: Request) -> str:
    """Check the admin token and name who acts: `admin`, or `admin:<X-Admin-Actor>` for the audit log.

    With no token configured the whole admin surface answers 404, so it cannot be probed.
    """
    expected = runtime(request).settings.admin_token
    if not expected:
        raise NotFound(ADMIN_DISABLED)
    given = bearer_token(request)
    # compare_digest takes as long whatever the first differing byte is.
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated(BAD_ADMIN_TOKEN)
    # No id of ours has a control character, and PostgreSQL refuses a NUL (a %00) as a parameter.
    if not all(str(value).isprintable() for value in request.path_params.values()):
        raise NotFound("Not found")
    name = request.headers.get("x-admin-actor", "").strip()
    if not name:
        return "admin"
    if len(name) > MAX_ACTOR_CHARS or not name.isprintable():
        raise InvalidRequest(f"X-Admin-Actor must be at most {MAX_ACTOR_CHARS} printable characters")
    return f"admin:{name}"
