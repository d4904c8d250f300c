"""Where a submit's time goes: the CPU each of its Store and Bus calls costs, one call at a time.

    .venv/bin/python bench/submit_parts.py --database postgres   # or sqlite (the default)

The submit of `bench/http.py` is CPU-bound in the API process, so its rate is set by the sum of
what its parts cost there. Each part runs `--calls` times in a row in this process (on uvloop,
like `serve`) against the backend's servers, and its CPU time per call (user + system, this
process only) is printed next to a baseline measured in the same run: one redis-py PING, the
cheapest round trip the service makes. On PostgreSQL a raw asyncpg UPDATE is shown as well, to
separate what the driver costs from what SQLAlchemy adds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import secrets
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import update
from sqlmodel import col

from bench.common import DATABASES, backing_servers, bench_settings, bench_workdir
from lunos_events.ids import OperationStamps
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.services import accounts, admission
from lunos_events.services.accounts import Principal
from lunos_events.services.generation_request import parse_generation_request
from lunos_events.services.generations import new_operation
from lunos_events.services.lifecycle import create_operation
from lunos_events.settings import Settings, TierLimits
from lunos_events.store.models import Operation
from lunos_events.store.records import StoredEvent

BODY = {
    "model": "google/veo-3.0-generate-preview",
    "prompt": "A cinematic shot of a majestic lion in the savannah.",
    "parameters": {"aspectRatio": "16:9"},
}


async def cpu_per_call(calls: int, part: Callable[[], Awaitable[object]]) -> float:
    """Microseconds of this process's CPU per call, after a short warm-up."""
    for _ in range(max(calls // 10, 5)):
        await part()
    started = time.process_time()
    for _ in range(calls):
        await part()
    return (time.process_time() - started) / calls * 1e6


async def measure(rt: Runtime, calls: int, raw_postgres_url: str | None) -> list[tuple[str, float]]:
    generations, bus, store = rt.generations, rt.bus, rt.store
    await accounts.create_account(store, "parts", 10**12, "bench")
    principal = Principal("parts", "bench")
    request = parse_generation_request(BODY, rt.catalog, max_prompt_chars=10_000, header_app_id=None)
    stamps = OperationStamps()

    async def created() -> tuple[str, StoredEvent]:
        op = new_operation(principal, request, stamps.next("parts"), 3600)
        async with store.transaction() as tx:
            return op.id, await create_operation(tx, op, None)

    async def create_and_start() -> None:
        op_id, event = await created()
        # The provider accepted it: processing, its event stored and published, pending marked sent.
        await generations.lifecycle.processing(op_id, "provider-op", 60.0, event, request_webhook=False)

    async def take() -> None:
        await bus.limits.take(
            "parts",
            per_minute=10**9,
            max_in_flight=10**9,
            window_ms=60_000,
            reservation="reservation:" + secrets.token_hex(8),
            reservation_ttl_ms=60_000,
        )

    op_id, _ = await created()
    touch = update(Operation).where(col(Operation.id) == op_id).values(updated_at_ms=1)
    parts: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("redis-py PING (baseline)", bus.redis.ping),
        ("Bus: limits take (EVALSHA)", take),
        ("Bus: limits confirm (EVALSHA)", lambda: bus.limits.confirm("parts", "r", op_id, 1)),
        ("Bus: publish", lambda: bus.redis.publish("parts", b"x" * 200)),
        ("Bus: enqueue (arq enqueue_job)", lambda: bus.enqueue_tracking(secrets.token_hex(8), 3600)),
        ("Store: point read", lambda: store.operation_status(op_id, "parts")),
        ("Store: one statement, autocommit", lambda: store.execute(touch)),
        ("Store: create transaction (5 trips)", created),
        ("Store: create + processing transition", create_and_start),
        (
            "whole submit (admit_submit)",
            lambda: admission.admit_submit(
                generations, principal, request, idempotency_key=None, fingerprint=None
            ),
        ),
    ]
    results = [(name, await cpu_per_call(calls, part)) for name, part in parts]
    if raw_postgres_url is not None:
        results.insert(1, ("raw asyncpg UPDATE (driver only)", await raw_asyncpg(raw_postgres_url, calls)))
    return results


async def raw_asyncpg(url: str, calls: int) -> float:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await cpu_per_call(
            calls, lambda: connection.execute("UPDATE accounts SET tier = tier WHERE id = $1", "parts")
        )
    finally:
        await connection.close()


async def run(settings: Settings, calls: int) -> list[tuple[str, float]]:
    async with open_runtime(settings) as rt:
        url = settings.database_url
        return await measure(rt, calls, url if url and url.startswith("postgresql") else None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--calls", type=int, default=2000, help="calls per part")
    args = parser.parse_args()
    workdir = bench_workdir("lunos-bench-parts-")
    with backing_servers(workdir, args.database) as (database_url, redis_url):
        settings = bench_settings(
            workdir,
            database_url,
            redis_url,
            tiers={"bench": TierLimits(submits_per_minute=10**9, max_in_flight=10**9)},
            simulator_latency_seconds=3600,
        )
        import uvloop

        results = uvloop.run(run(settings, args.calls))
    baseline = results[0][1]
    print(f"CPU per call in one process, {args.database}, {args.calls} calls per part, one at a time")
    for name, micros in results:
        print(f"  {name:<38} {micros:8.0f} µs   {micros / baseline:5.1f}x baseline")


if __name__ == "__main__":
    main()
