"""Our signer against the `standardwebhooks` library, and `lunos_events.webhooks.verify` for receivers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from lunos_events.services.webhook_fanout import webhook_payload
from lunos_events.webhooks import (
    InvalidPayload,
    InvalidSignature,
    MissingHeaders,
    StaleTimestamp,
    WebhookEvent,
    verify,
)
from lunos_events.webhooks import WebhookVerificationError as OurVerificationError
from lunos_events.webhooks.signing import WebhookSigner, new_secret
from tests.webhook_receiver import library_signed_headers

BODY = webhook_payload(
    "video.completed", 1_703_123_460_000, '{"id":"video-op:u:1","status":"completed"}'
).encode()


def test_our_signatures_verify_with_the_library() -> None:
    first, second = new_secret(), new_secret()
    headers = WebhookSigner([first, second]).headers("msg_1", int(time.time()), BODY)
    for secret in (first, second):
        assert Webhook(secret).verify(BODY, headers)["type"] == "video.completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_verify_accepts_library_signed_messages() -> None:
    secret = new_secret()
    event = verify(BODY, library_signed_headers(secret, "msg_2", BODY), secret)
    assert event == WebhookEvent(
        id="msg_2",
        type="video.completed",
        timestamp=datetime(2023, 12, 21, 1, 51, tzinfo=UTC),
        data={"id": "video-op:u:1", "status": "completed"},
        signed_at=event.signed_at,
    )


def test_verify_accepts_any_of_several_signatures_and_several_secrets() -> None:
    old, new = new_secret(), new_secret()
    headers = WebhookSigner([new, old]).headers("msg_3", int(time.time()), BODY)
    assert verify(BODY, headers, old).id == "msg_3"
    assert verify(BODY, headers, new).id == "msg_3"
    only_new = WebhookSigner([new]).headers("msg_3", int(time.time()), BODY)
    assert verify(BODY, only_new, [old, new]).id == "msg_3"
    # Unknown versions and garbage among the signatures are skipped, not fatal.
    noisy = dict(only_new, **{"webhook-signature": "v2,abc v1,!!! " + only_new["webhook-signature"]})
    assert verify(BODY, noisy, new).type == "video.completed"


def test_verify_raises_typed_errors() -> None:
    secret = new_secret()
    headers = library_signed_headers(secret, "msg_4", BODY)
    with pytest.raises(InvalidSignature):
        verify(BODY.replace(b"completed", b"failed"), headers, secret)
    with pytest.raises(InvalidSignature):
        verify(BODY, headers, new_secret())
    with pytest.raises(InvalidSignature):
        verify(BODY, dict(headers, **{"webhook-id": "msg_other"}), secret)
    with pytest.raises(StaleTimestamp):
        verify(BODY, library_signed_headers(secret, "msg_4", BODY, at=time.time() - 600), secret)
    with pytest.raises(StaleTimestamp):
        verify(BODY, library_signed_headers(secret, "msg_4", BODY, at=time.time() + 600), secret)
    with pytest.raises(StaleTimestamp):
        verify(BODY, dict(headers, **{"webhook-timestamp": "soon"}), secret)
    with pytest.raises(MissingHeaders):
        verify(BODY, {k: v for k, v in headers.items() if k != "webhook-signature"}, secret)
    not_event = b'{"hello": 1}'
    with pytest.raises(InvalidPayload):
        verify(not_event, library_signed_headers(secret, "msg_5", not_event), secret)
    for error in (InvalidSignature, StaleTimestamp, MissingHeaders, InvalidPayload):
        assert issubclass(error, OurVerificationError)


def test_verify_reads_headers_in_any_case_and_honours_tolerance() -> None:
    secret = new_secret()
    headers = {
        k.title(): v for k, v in library_signed_headers(secret, "msg_6", BODY, at=time.time() - 100).items()
    }
    assert verify(BODY, headers, secret).id == "msg_6"
    with pytest.raises(StaleTimestamp):
        verify(BODY, headers, secret, tolerance_seconds=30)
