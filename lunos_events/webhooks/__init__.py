"""Signed webhooks (Standard Webhooks). For receivers: `verify(payload, headers, secret)`.

Only the receiving side is imported here, so a receiver pulls in nothing of the service.
"""

from __future__ import annotations

from lunos_events.webhooks.verify import (
    InvalidPayload,
    InvalidSignature,
    MissingHeaders,
    StaleTimestamp,
    WebhookEvent,
    WebhookVerificationError,
    verify,
)

__all__ = [
    "InvalidPayload",
    "InvalidSignature",
    "MissingHeaders",
    "StaleTimestamp",
    "WebhookEvent",
    "WebhookVerificationError",
    "verify",
]
