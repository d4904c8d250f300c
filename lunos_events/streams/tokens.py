"""Stream tokens: short-lived, HMAC-signed grants to read one event stream from a browser.

`EventSource` cannot send an `Authorization` header, and an API key must never travel in a URL, so
browsers present one of these in `?token=` instead. A token names the account, either one
operation or the account stream (optionally narrowed to one app), and the API key that minted it
(by its SHA-256, which is what the database keeps): revoking that key makes its tokens fail, and
ends the streams opened with them (api/streams.py checks the key, like an API key's, through the
process's cache of key lookups). Minting one on every status response costs a few microseconds.

Format: `<payload>.<signature>`, both unpadded base64url; payload = JSON
`[version, expires_at (unix s), account_id, kind, target, key_hash]` with kind `op` (target =
operation id) or `account` (target = app id or null); signature = HMAC-SHA256(secret, payload
text). Version 1 tokens (without the key) are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from lunos_events.errors import Forbidden, Unauthenticated
from lunos_events.json_text import compact_json
from lunos_events.settings import Settings

_VERSION = 2
OPERATION = "op"
ACCOUNT = "account"
MIN_SECRET_CHARS = 32
# A client polling an operation gets the same token for this long (it still has at least
# ttl - REUSE_SECONDS to live), instead of an HMAC and a JSON encoding per poll.
REUSE_SECONDS = 60
_MAX_REUSED = 10_000
INVALID_TOKEN = "Invalid or expired stream token"
WRONG_SCOPE = "This stream token does not grant access to this stream"


@dataclass(frozen=True)
class StreamGrant:
    """What a verified token allows: one operation's stream, or the account stream (maybe one app)."""

    account_id: str
    kind: str
    target: str | None
    expires_at: int
    key_hash: str  # of the API key that minted the token

    def allow_operation(self, operation_id: str, app_id: str | None) -> None:
        if self.kind == OPERATION and self.target == operation_id:
            return
        if self.kind == ACCOUNT and self.target in (None, app_id):
            return
        raise Forbidden(WRONG_SCOPE)

    def account_stream_app(self, requested_app: str | None) -> str | None:
        """The app the account stream is limited to under this grant."""
        if self.kind != ACCOUNT:
            raise Forbidden(WRONG_SCOPE)
        if self.target is None:
            return requested_app
        if requested_app not in (None, self.target):
            raise Forbidden(WRONG_SCOPE)
        return self.target


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTokenSigner:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"the stream token secret must be at least {MIN_SECRET_CHARS} characters")
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        self.ttl_seconds = ttl_seconds
        self._recent: dict[tuple[str, str], tuple[int, str]] = {}  # (account, operation) -> minted

    def _sign(self, payload: str) -> str:
        mac = self._mac.copy()
        mac.update(payload.encode("ascii"))
        return _b64(mac.digest())

    def mint(
        self, account_id: str, kind: str, target: str | None, *, key_hash: str, expires_at: int | None = None
    ) -> str:
        expires = expires_at if expires_at is not None else int(time.time()) + self.ttl_seconds
        payload = _b64(compact_json([_VERSION, expires, account_id, kind, target, key_hash]).encode())
        return f"{payload}.{self._sign(payload)}"

    def for_operation(
        self, account_id: str, operation_id: str, *, key_hash: str, expires_at: int | None = None
    ) -> str:
        if expires_at is not None:
            return self.mint(account_id, OPERATION, operation_id, key_hash=key_hash, expires_at=expires_at)
        now = int(time.time())
        recent = self._recent.get((key_hash, operation_id))
        if recent is not None and now - recent[0] < min(REUSE_SECONDS, self.ttl_seconds // 2):
            return recent[1]
        token = self.mint(
            account_id, OPERATION, operation_id, key_hash=key_hash, expires_at=now + self.ttl_seconds
        )
        if len(self._recent) >= _MAX_REUSED:
            self._recent.clear()
        self._recent[key_hash, operation_id] = (now, token)
        return token

    def for_account(
        self, account_id: str, app_id: str | None = None, *, key_hash: str, expires_at: int | None = None
    ) -> str:
        return self.mint(account_id, ACCOUNT, app_id, key_hash=key_hash, expires_at=expires_at)

    def verify(self, token: str) -> StreamGrant:
        """The grant of a genuine, unexpired token; Unauthenticated otherwise."""
        payload, _, signature = token.partition(".")
        if not payload or not signature.isascii() or not payload.isascii():
            raise Unauthenticated(INVALID_TOKEN)
        if not hmac.compare_digest(self._sign(payload), signature):
            raise Unauthenticated(INVALID_TOKEN)
        try:
            version, expires, account_id, kind, target, key_hash = json.loads(_unb64(payload))
        except (ValueError, TypeError, binascii.Error):
            raise Unauthenticated(INVALID_TOKEN) from None
        if version != _VERSION or kind not in (OPERATION, ACCOUNT) or not isinstance(expires, int):
            raise Unauthenticated(INVALID_TOKEN)
        if not isinstance(key_hash, str) or expires <= time.time():
            raise Unauthenticated(INVALID_TOKEN)
        return StreamGrant(
            account_id=account_id, kind=kind, target=target, expires_at=expires, key_hash=key_hash
        )


MISSING_SECRET = (
    "LUNOS_STREAM_TOKEN_SECRET is not set: every API process needs the same secret (at least "
    f"{MIN_SECRET_CHARS} characters, e.g. `openssl rand -hex 32`) to sign the tokens in `events_url`"
)


def signer_from_settings(settings: Settings) -> StreamTokenSigner:
    """The process's signer; raises RuntimeError with a clear message when the secret is unusable."""
    if not settings.stream_token_secret:
        raise RuntimeError(MISSING_SECRET)
    try:
        return StreamTokenSigner(settings.stream_token_secret, settings.stream_token_ttl_seconds)
    except ValueError as exc:
        raise RuntimeError(f"LUNOS_STREAM_TOKEN_SECRET: {exc}") from None
