"""Memory of an R2 upload: peak Python allocations while storing a large video, as a ratio of its size.

Streams through aioboto3 to moto's S3 server running in a separate process (so the stored copy is
not counted). The baseline is the same file read whole into memory, measured in the same run.

    .venv/bin/python bench/r2_upload.py [size_mib]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/http.py would shadow the
# standard library's `http`: the project root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import asyncio
import os
import socket
import subprocess
import tempfile
import time
import tracemalloc

import boto3

from bench.common import free_port
from lunos_events.settings import Settings
from lunos_events.storage import build_storage

MiB = 1024 * 1024


def peak_during(action) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    action()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 96
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        credentials = {"aws_access_key_id": "k", "aws_secret_access_key": "s"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials).create_bucket(
            Bucket="bench"
        )
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "video.mp4"
            with source.open("wb") as out:
                for _ in range(size):
                    out.write(os.urandom(MiB))
            settings = Settings(
                storage="r2",
                r2_endpoint_url=endpoint,
                r2_bucket="bench",
                r2_access_key_id="k",
                r2_secret_access_key="s",
                data_dir=Path(tmp),
            )

            async def upload() -> None:
                storage = build_storage(settings)
                try:
                    await storage.save("bench/video.mp4", source)
                finally:
                    await storage.aclose()

            baseline = peak_during(source.read_bytes)
            started = time.perf_counter()
            upload_peak = peak_during(lambda: asyncio.run(upload()))
            seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)
    print(f"file: {size} MiB, chunk {settings.r2_multipart_chunk_bytes // MiB} MiB")
    print(f"baseline (read whole file): peak {baseline / MiB:.1f} MiB")
    print(f"upload through R2Storage:   peak {upload_peak / MiB:.1f} MiB in {seconds:.1f} s (traced)")
    print(f"ratio upload/baseline: {upload_peak / baseline:.2f}")


if __name__ == "__main__":
    main()
