"""Verifying a webhook on the receiving side: signature over the raw body, and a fresh timestamp."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lunos_events.webhooks.signing import secret_key, sign

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The message must be rejected (answer 400); the subclass says why."""


class MissingHeaders(WebhookVerificationError):
    pass


class InvalidSignature(WebhookVerificationError):
    pass


class StaleTimestamp(WebhookVerificationError):
    """The timestamp is outside the tolerance: a replay, or a clock far off."""


class InvalidPayload(WebhookVerificationError):
    pass


@dataclass(frozen=True)
class WebhookEvent:
    id: str  # the `webhook-id`: the same on every retry, so de-duplicate on it
    type: str  # "video.completed", "video.failed", ...
    timestamp: datetime  # when the event happened (the payload's `timestamp`)
    data: dict[str, Any]  # the operation's status object
    signed_at: int  # the `webhook-timestamp` header (unix seconds)


def verify(
    payload: bytes,
    headers: Mapping[str, str],
    secret: str | Iterable[str],
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> WebhookEvent:
    """Check a received webhook and return its event.

    `payload` is the raw request body (never a re-serialised one); `headers` any case-insensitive
    or lower-case mapping; `secret` one `whsec_...` secret, or several while rotating. Any of the
    space-separated signatures may match. Raises a WebhookVerificationError subclass otherwise.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise MissingHeaders("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        signed_at = int(stamp)
    except ValueError:
        raise StaleTimestamp("webhook-timestamp is not a unix time in seconds") from None
    current = time.time() if now is None else now
    if abs(current - signed_at) > tolerance_seconds:
        raise StaleTimestamp("webhook-timestamp is outside the accepted window")

    keys = [secret_key(secret)] if isinstance(secret, str) else [secret_key(s) for s in secret]
    expected = [base64.b64decode(sign(key, msg_id, signed_at, payload)) for key in keys]
    if not any(_matches(candidate, expected) for candidate in signatures.split()):
        raise InvalidSignature("no matching signature")

    try:
        body = json.loads(payload)
        return WebhookEvent(
            id=msg_id,
            type=body["type"],
            timestamp=datetime.fromisoformat(body["timestamp"]).astimezone(UTC),
            data=body["data"],
            signed_at=signed_at,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidPayload(f"payload is not a webhook event: {exc}") from None


def _matches(candidate: str, expected: list[bytes]) -> bool:
    version, _, encoded = candidate.partition(",")
    if version != "v1":
        return False
    try:
        given = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    # Compare against every key so the time taken does not say which one matched.
    return sum(hmac.compare_digest(given, e) for e in expected) > 0
