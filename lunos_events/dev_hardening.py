"""What `lunos-events dev` does so that its embedded defaults are not an open door on a shared machine.

The data dir holds webhook secrets (in the SQLite file), the development key and the stream token
secret: it is the owner's only (0700, files 0600). A pinned development key must be as hard to
guess as a generated one.
"""

from __future__ import annotations

import math
import os
import zlib
from collections import Counter
from pathlib import Path

from lunos_events.ids import API_KEY_PREFIX

MIN_KEY_BITS = 128
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def estimated_key_bits(key: str) -> float:
    """A generous upper bound of a key's entropy, from the key alone.

    The least of three figures: its length times the bits of the smallest alphabet of character
    classes it uses (digits, lower, upper, other); its length times the Shannon entropy of its own
    characters (`aaaa…` scores nothing); and the size of its zlib compression (a repeated word
    scores one word). A memorable phrase can still pass: this refuses the obviously weak only.
    """
    body = key.removeprefix(API_KEY_PREFIX)
    if not body:
        return 0.0
    alphabet = (
        10 * any(c.isdigit() for c in body)
        + 26 * any(c.islower() for c in body)
        + 26 * any(c.isupper() for c in body)
        + 33 * any(not c.isalnum() for c in body)
    )
    counts = Counter(body)
    shannon = -sum(n / len(body) * math.log2(n / len(body)) for n in counts.values())
    compressed = 8 * (len(zlib.compress(body.encode(), 9)) - len(zlib.compress(b"", 9)))
    return min(len(body) * min(math.log2(max(alphabet, 1)), shannon), float(compressed))


def weak_key_reason(key: str) -> str | None:
    """Why a pinned development key is refused, or None when it is strong enough."""
    bits = estimated_key_bits(key)
    if bits >= MIN_KEY_BITS:
        return None
    return (
        f"LUNOS_DEV_API_KEY is too easy to guess (about {bits:.0f} bits; at least {MIN_KEY_BITS} "
        "needed): leave it unset to get a generated key, or pin one made with "
        "`python -c 'import secrets; print(\"lun_\" + secrets.token_urlsafe(32))'`"
    )


def make_private(data_dir: Path) -> None:
    """Create the data dir owner-only, tighten what an earlier start left readable, and make every
    file this process creates from now on (SQLite and its -wal/-shm, videos, keys) owner-only."""
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(data_dir):
        os.chmod(root, PRIVATE_DIR)
        for name in files:
            path = Path(root, name)
            if not path.is_symlink() and path.stat().st_mode & 0o077:
                path.chmod(PRIVATE_FILE)
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
