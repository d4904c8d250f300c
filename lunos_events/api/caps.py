"""Per-tier caps on the cheap-looking requests a tenant could repeat to load the service: lists,
usage reports, stream tokens (per API key), and webhook test sends and redeliveries (per account,
since each one is outbound traffic). The counting is services/limits.py's; 429 + Retry-After."""

from __future__ import annotations

from starlette.requests import Request

from lunos_events.api.auth import authenticate, bearer_token, runtime
from lunos_events.ids import api_key_hash
from lunos_events.services import limits
from lunos_events.services.accounts import Principal

READS = "list, usage and stream-token requests"
WEBHOOK_SENDS = "webhook test sends and redeliveries"


async def authenticate_read(request: Request) -> Principal:
    """Authenticate, and count the request against its API key's reads per minute."""
    principal = await authenticate(request)
    rt = runtime(request)
    scope = limits.api_key_scope(api_key_hash(bearer_token(request) or ""))
    per_minute = rt.settings.tier_limits(principal.tier).reads_per_minute
    await limits.take_rate(rt.bus, scope, "reads", per_minute, READS)
    return principal


async def authenticate_webhook_send(request: Request) -> Principal:
    """Authenticate, and count a /test or /redeliver against the account's sends per minute."""
    principal = await authenticate(request)
    rt = runtime(request)
    per_minute = rt.settings.tier_limits(principal.tier).webhook_sends_per_minute
    await limits.take_rate(rt.bus, principal.account_id, "webhook_sends", per_minute, WEBHOOK_SENDS)
    return principal
