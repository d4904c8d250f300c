"""What a long-running process sets up before it serves: garbage collection fit for a server."""

from __future__ import annotations

import asyncio
import gc

import pytest

from lunos_events.serving import YOUNG_COLLECTION_THRESHOLD, until_stopped

pytestmark = pytest.mark.anyio


@pytest.fixture
def restored_gc():  # type: ignore[no-untyped-def]
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # this test process goes on: its objects are collectable again
    gc.set_threshold(*threshold)


async def test_start_up_objects_are_frozen_and_young_collections_wait_longer(restored_gc) -> None:
    stop = asyncio.Event()
    stop.set()
    assert gc.get_freeze_count() == 0
    await until_stopped(stop)
    assert gc.get_freeze_count() > 10_000  # this process's modules and fixtures, at least
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD > 700
