"""HTTP hot paths against a bare Starlette JSON endpoint served the same way, in the same run.

    .venv/bin/python bench/http.py                    # 5 rounds, 4 s per measurement, 32 connections
    .venv/bin/python bench/http.py --rounds 9 --seconds 5 --connections 64

Runs a real `lunos-events serve` process (embedded redis-server, SQLite in a temporary directory)
and, as the baseline, a bare Starlette app answering a small JSON object, on the same uvicorn
settings (uvloop + httptools, no access log) in its own process. One load-generating process keeps
N keep-alive connections busy with raw HTTP/1.1 requests, so both servers meet the same client.

Measured: requests/s and p50/p99 latency of
  * `GET /v1/video/generations/{id}` (poll: API-key check, one row read, the stream token);
  * `POST /v1/video/generations` (submit: key check, tier limits in one Redis script, the charge,
    operation and event in one transaction, one Redis pipeline (in-flight slot, publish, tracking
    job), provider start, provider name and published mark in a second transaction);
and each against the bare endpoint (GET, and POST with the same body). Targets on a 2-core machine:
poll >= 0.5x bare, submit >= 0.25x bare.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/http.py would shadow the
# standard library's `http`: the project root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import json
import multiprocessing
import secrets
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from bench.common import child_env, free_port, percentile, start_lunos, wait_until_healthy
from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.settings import Settings, TierLimits

ACCOUNT = "bench"
SUBMIT_BODY = json.dumps(
    {
        "model": "google/veo-3.0-generate-preview",
        "prompt": "A cinematic shot of a majestic lion in the savannah.",
        "parameters": {"aspectRatio": "16:9"},
    }
).encode()

BARE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

async def status(request: Request) -> JSONResponse:
    return JSONResponse({"id": "video-op:bench:1", "status": "pending"})

async def submit(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"id": "video-op:bench:1", "operation_name": body["model"], "status": "pending"})

app = Starlette(routes=[Route("/status", status), Route("/submit", submit, methods=["POST"])])
app.add_route("/healthz", status)
import uvloop
config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
uvloop.run(uvicorn.Server(config).serve())
"""


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def request_bytes(method: str, path: str, port: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(port: int, request: bytes, until: float, out: Result) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (started := time.perf_counter()) < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            out.latencies.append(time.perf_counter() - started)
            out.statuses[status] = out.statuses.get(status, 0) + 1
            out.requests += 1
    finally:
        writer.close()


def load_process(port: int, request: bytes, connections: int, seconds: float, pipe: Connection) -> None:
    import uvloop

    async def run() -> Result:
        out = Result(0, seconds, [], {})
        until = time.perf_counter() + seconds
        await asyncio.gather(*(_connection(port, request, until, out) for _ in range(connections)))
        return out

    pipe.send(uvloop.run(run()))


def measure(port: int, request: bytes, connections: int, seconds: float) -> Result:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=load_process, args=(port, request, connections, seconds, child))
    process.start()
    result = parent.recv()
    process.join()
    return result


def show(name: str, result: Result, ratio: str = "") -> str:
    line = (
        f"  {name:<34} {result.rate:9.0f} req/s   p50 {percentile(result.latencies, 0.5) * 1000:6.2f} ms"
        f"   p99 {percentile(result.latencies, 0.99) * 1000:6.2f} ms{ratio}"
    )
    bad = {status: n for status, n in result.statuses.items() if status >= 400}
    return line + (f"   (errors: {bad})" if bad else "")


async def bench_account(settings: Settings) -> str:
    """The bench account's key: balance for every submit of the run, limits out of the way."""
    async with open_runtime(settings) as rt:
        await accounts.create_account(rt.store, ACCOUNT, 10**12, "bench")
        return await accounts.create_api_key(rt.store, ACCOUNT)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement, per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    workdir = Path(tempfile.mkdtemp(prefix="lunos-bench-http-"))
    port, bare_port = free_port(), free_port()
    with EmbeddedRedis(workdir / "redis") as redis_server:
        unlimited = TierLimits(submits_per_minute=10**9, max_in_flight=10**9)
        settings = Settings(
            data_dir=workdir / "data",
            port=port,
            redis_url=redis_server.url,
            stream_token_secret=secrets.token_hex(32),
            tiers={"bench": unlimited},
            simulator_latency_seconds=3600,
        )
        key = asyncio.run(bench_account(settings))
        auth = {"Authorization": f"Bearer {key}"}
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port)])
        server = start_lunos("serve", child_env(settings.as_env()), f"http://127.0.0.1:{port}/healthz")
        try:
            wait_until_healthy(bare, f"http://127.0.0.1:{bare_port}/healthz")
            submit = request_bytes("POST", "/v1/video/generations", port, auth, SUBMIT_BODY)
            warm = measure(port, submit, 4, 1.0)  # also makes the operation the polls read
            assert warm.statuses.get(200), f"submit failed: {warm.statuses}"
            op_id = asyncio.run(latest_operation(settings))
            pairs = {
                "poll": (
                    (bare_port, request_bytes("GET", "/status", bare_port, {})),
                    (port, request_bytes("GET", f"/v1/video/generations/{op_id}", port, auth)),
                ),
                "submit": (
                    (bare_port, request_bytes("POST", "/submit", bare_port, {}, SUBMIT_BODY)),
                    (port, submit),
                ),
            }
            print(
                f"HTTP on one API process, {args.connections} connections, {args.rounds} rounds of"
                f" {args.seconds:g} s per measurement, each round next to its own bare baseline"
            )
            rounds = {name: [] for name in pairs}
            for n in range(args.rounds):
                for name, sides in pairs.items():
                    # Which goes first alternates, so a drift within a round favours neither.
                    order = sides if n % 2 == 0 else sides[::-1]
                    measured = {side: measure(*side, args.connections, args.seconds) for side in order}
                    rounds[name].append((measured[sides[0]], measured[sides[1]]))
        finally:
            server.terminate()
            bare.terminate()
            server.wait(timeout=30)
            bare.wait(timeout=30)
    poll = report("bare GET (baseline)", "GET /v1/video/generations/{id}", rounds["poll"])
    submits = report("bare POST (baseline)", "POST /v1/video/generations", rounds["submit"])
    print(
        f"  targets: poll >= 0.5x bare: {'ok' if poll >= 0.5 else 'MISSED'};"
        f" submit >= 0.25x bare: {'ok' if submits >= 0.25 else 'MISSED'}"
    )


def report(baseline_name: str, name: str, rounds: list[tuple[Result, Result]]) -> float:
    """Print the rounds merged; returns the median of the per-round ratios.

    The machine's speed drifts from one minute to the next, so each round's ratio compares two
    measurements taken seconds apart, and the median leaves out a round that a burst of other work
    disturbed.
    """
    ratios = sorted(own.rate / baseline.rate for baseline, own in rounds)
    median = statistics.median(ratios)
    print(show(baseline_name, merged([baseline for baseline, _ in rounds])))
    each = ", ".join(f"{r:.2f}" for r in ratios)
    print(show(name, merged([own for _, own in rounds]), f"   {median:5.2f}x bare (rounds: {each})"))
    return median


def merged(results: list[Result]) -> Result:
    total = Result(0, 0.0, [], {})
    for result in results:
        total.requests += result.requests
        total.seconds += result.seconds
        total.latencies += result.latencies
        for status, n in result.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + n
    return total


async def latest_operation(settings: Settings) -> str:
    from sqlalchemy import select

    from lunos_events.store.models import Operation

    async with open_runtime(settings) as rt, rt.store.reading() as conn:
        return (await conn.execute(select(Operation.id).limit(1))).scalar_one()


if __name__ == "__main__":
    main()
