"""Identifiers: operation ids, storage keys and API keys."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import threading
import time

OPERATION_ID_PREFIX = "video-op:"
ACCOUNT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
API_KEY_PREFIX = "lun_"
API_KEY_DISPLAY_CHARS = 12


class _RandomBytes:
    """The OS's random bytes, fetched a block at a time.

    A submit needs three random values; each `os.urandom` call is a system call that cost ~10 µs in
    a busy API process. The bytes are the same ones, handed out once each; a forked child starts
    from a fresh block, so it never repeats its parent's.
    """

    BLOCK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._used = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._used + count > len(self._block):
                self._block, self._used = os.urandom(max(self.BLOCK, count)), 0
            start, self._used = self._used, self._used + count
            return self._block[start : self._used]

    def discard(self) -> None:
        self._lock = threading.Lock()  # a fork may have copied it held
        self._block, self._used = b"", 0


_random_bytes = _RandomBytes()
os.register_at_fork(after_in_child=_random_bytes.discard)


def random_token(nbytes: int) -> str:
    """`secrets.token_urlsafe(nbytes)`, from the block (see _RandomBytes)."""
    return base64.urlsafe_b64encode(_random_bytes.take(nbytes)).rstrip(b"=").decode("ascii")


def random_below(n: int) -> int:
    """A uniform random integer in [0, n) for n up to 2**32, from the block."""
    while True:  # rejection sampling: no value is likelier than another
        value = int.from_bytes(_random_bytes.take(4), "big")
        if value < (1 << 32) - (1 << 32) % n:
            return value % n


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def operation_id(account_id: str, unix_ms: int) -> str:
    return f"{OPERATION_ID_PREFIX}{account_id}:{unix_ms}"


class OperationStamps:
    """Hands out each account's operation-id milliseconds without repeats within this process.

    Ids are `video-op:<account>:<unix_ms>`, so an account submitting faster than once per
    millisecond would collide with itself; here the next stamp is the current millisecond or one
    past the last one given, whichever is later. (Another API replica can still pick the same
    stamp: the primary key catches that and the caller asks again.)
    """

    MAX_ACCOUNTS = 100_000

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, account_id: str) -> int:
        stamp = max(now_ms(), self._last.get(account_id, 0) + 1)
        if len(self._last) >= self.MAX_ACCOUNTS:
            self._last.clear()  # a repeat this could cause is caught like a replica's
        self._last[account_id] = stamp
        return stamp


def operation_owner(op_id: str) -> str | None:
    """The account id embedded in an operation id, or None when it is not one of ours."""
    if not op_id.startswith(OPERATION_ID_PREFIX):
        return None
    owner, _, stamp = op_id[len(OPERATION_ID_PREFIX) :].rpartition(":")
    if not owner or not stamp.isascii() or not stamp.isdigit():
        return None
    return owner


def video_key(account_id: str, unix_ms: int) -> str:
    # The random part keeps object URLs unguessable from the (non-secret) operation id.
    return f"{account_id}/{unix_ms}-{random_token(16)}-video.mp4"


def sample_key(video_key: str, index: int) -> str:
    """Where sample `index` of an operation is stored: the first is the video key itself."""
    return video_key if index == 0 else video_key.removesuffix(".mp4") + f"-{index + 1}.mp4"


def poster_key(video_key: str) -> str:
    """Where the poster (first frame, JPEG) of an operation's first video is stored."""
    return video_key.removesuffix(".mp4") + "-poster.jpg"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_display_prefix(key: str) -> str:
    return key[:API_KEY_DISPLAY_CHARS]
