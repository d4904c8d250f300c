"""Helpers for the servers the project starts as its own children (redis-server, PostgreSQL)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import sys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]  # (host, port) for an AF_INET socket
        return port


def die_with_parent() -> None:
    """A `preexec_fn`: on Linux the kernel sends SIGTERM to the child if we die, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
