"""Random parts of identifiers (ids.py): drawn from the OS a block at a time, never repeated."""

from __future__ import annotations

import base64
import collections
import os

from lunos_events import ids


def test_random_tokens_are_distinct_across_blocks() -> None:
    # 16 bytes a token and a 4,096-byte block: this spans ~40 blocks.
    tokens = [ids.random_token(16) for _ in range(10_000)]
    assert len(set(tokens)) == len(tokens)
    assert all(len(base64.urlsafe_b64decode(t + "==")) == 16 for t in tokens)


def test_a_forked_child_does_not_repeat_its_parents_bytes() -> None:
    ids.random_token(16)  # the parent holds a block with bytes left in it
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, ids.random_token(16).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        childs = pipe.read()
    assert childs and childs != ids.random_token(16)


def test_random_below_covers_its_range_evenly() -> None:
    counts = collections.Counter(ids.random_below(6) for _ in range(60_000))
    assert set(counts) == set(range(6))
    assert all(9_000 < n < 11_000 for n in counts.values())  # each bound is over ten standard deviations away
