"""`lunos-events stack`: the production shape on one machine, from Debian's packages.

A private PostgreSQL cluster, Debian's redis-server (with an append-only file, as in
docker-compose.yml), moto's S3 server standing in for R2, `migrate` once, N `serve` replicas behind
Debian's nginx and M `worker` processes. Everything lives under one data dir, listens on loopback
only, and is stopped (process groups, then the servers) when the stack stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.child_processes import free_port
from lunos_events.services.media_request import largest_submit_bytes
from lunos_events.settings import Settings
from lunos_events.stack.children import ChildProcesses
from lunos_events.stack.nginx import NGINX, nginx_command, write_nginx_config
from lunos_events.store.private_postgres import PrivatePostgres

DEBIAN_REDIS = "/usr/bin/redis-server"
OPEN_FILES = 65536

# The settings docker-compose.yml gives its api and worker services, apart from the addresses of the
# other services (tests/test_compose.py checks that the two agree). The caller's own LUNOS_*
# variables override these, as `${VAR:-default}` does in the compose file.
PRODUCTION_SETTINGS = {
    "LUNOS_STORAGE": "r2",
    "LUNOS_R2_BUCKET": "videos",
    "LUNOS_R2_ACCESS_KEY_ID": "lunos",
    "LUNOS_R2_SECRET_ACCESS_KEY": "lunos-secret",
}


@dataclass
class StackOptions:
    data_dir: Path
    api_replicas: int = 2
    workers: int = 2
    port: int = 8787
    # LUNOS_* settings for every service (the stack's own addresses win over these).
    environment: dict[str, str] = field(default_factory=dict)
    # PostgreSQL's max_connections: size it for (replicas + workers) * LUNOS_DATABASE_POOL_SIZE.
    max_connections: int = 400


def missing_parts() -> list[str]:
    """The Debian packages the stack needs that are not installed."""
    missing = [
        name for name, path in (("nginx", NGINX), ("redis-server", DEBIAN_REDIS)) if not Path(path).exists()
    ]
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and not shutil.which("initdb"):
        missing.append("postgresql")
    return missing


def _raise_open_files_limit(wanted: int = OPEN_FILES) -> None:
    """Every SSE stream holds a socket in an API process and two in nginx: let the children (who
    inherit the limit) hold tens of thousands. Raising the hard limit needs root; else up to it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((max(soft, wanted), max(hard, wanted)), (max(soft, min(wanted, hard)), hard)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return


def lunos_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lunos_events", *args]


class ProductionStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self.api_ports = [free_port() for _ in range(options.api_replicas)]
        self.s3_port = free_port()
        self.postgres = PrivatePostgres(self.data_dir / "postgres", max_connections=options.max_connections)
        self.redis = EmbeddedRedis(self.data_dir / "redis", binary=DEBIAN_REDIS, appendonly=True)
        self.children = ChildProcesses(self.data_dir / "logs")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.options.port}"

    def api_url(self, replica: int) -> str:
        return f"http://127.0.0.1:{self.api_ports[replica]}"

    @property
    def api_names(self) -> list[str]:
        return [f"api-{i + 1}" for i in range(self.options.api_replicas)]

    @property
    def worker_names(self) -> list[str]:
        return [f"worker-{i + 1}" for i in range(self.options.workers)]

    def environment(self) -> dict[str, str]:
        """The environment of every lunos-events process of the stack."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUNOS_")}
        env.update(PRODUCTION_SETTINGS)
        env.update(self.options.environment)
        bucket = env["LUNOS_R2_BUCKET"]
        env.update(
            {
                "LUNOS_DATA_DIR": str(self.data_dir / "lunos"),
                "LUNOS_DATABASE_URL": self.postgres.url,
                "LUNOS_REDIS_URL": self.redis.url,
                "LUNOS_PUBLIC_BASE_URL": self.url,
                "LUNOS_R2_ENDPOINT_URL": f"http://127.0.0.1:{self.s3_port}",
                "LUNOS_R2_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.s3_port}/{bucket}",
            }
        )
        env.setdefault("LUNOS_STREAM_TOKEN_SECRET", self._stream_token_secret())
        return env

    def _stream_token_secret(self) -> str:
        path = self.data_dir / "stream-token-secret"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def start(self) -> None:
        missing = missing_parts()
        if missing:
            raise RuntimeError(
                f"the stack needs Debian's {', '.join(missing)}: apt-get install -y {' '.join(missing)}"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _raise_open_files_limit()
        # Run as root, PostgreSQL's and nginx's unprivileged users must reach their folders.
        self.data_dir.chmod(0o755)
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise

    def _start_parts(self) -> None:
        self.postgres.start()
        self.redis.start()
        env = self.environment()
        self.children.start(
            "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)], env
        )
        self._create_bucket(env)
        migrate = subprocess.run(
            lunos_command("migrate"), env=env, capture_output=True, text=True, timeout=120
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"lunos-events migrate failed: {migrate.stderr.strip()[-2000:]}")
        for name, port in zip(self.api_names, self.api_ports, strict=True):
            self.children.start(name, lunos_command("serve", "--port", str(port)), env)
        for name in self.worker_names:
            self.children.start(name, lunos_command("worker"), env)
        for replica in range(self.options.api_replicas):
            self.wait_healthy(self.api_url(replica))
        prefix = self.data_dir / "nginx"
        max_body = int(env.get("LUNOS_MAX_BODY_BYTES", Settings.model_fields["max_body_bytes"].default))
        max_image = int(env.get("LUNOS_MAX_IMAGE_BYTES", Settings.model_fields["max_image_bytes"].default))
        largest = largest_submit_bytes(max_body, max_image)
        write_nginx_config(prefix, self.options.port, self.api_ports, max_body, largest)
        self.children.start("nginx", nginx_command(prefix), env)
        self.wait_healthy(self.url)

    def _create_bucket(self, env: dict[str, str], timeout: float = 30.0) -> None:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = boto3.client(
            "s3",
            endpoint_url=env["LUNOS_R2_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=env["LUNOS_R2_ACCESS_KEY_ID"],
            aws_secret_access_key=env["LUNOS_R2_SECRET_ACCESS_KEY"],
        )
        bucket = env["LUNOS_R2_BUCKET"]
        # Objects readable by anyone at LUNOS_R2_PUBLIC_BASE_URL, as compose's minio-bucket makes them.
        public_read = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
        deadline = time.monotonic() + timeout
        while True:
            try:
                s3.create_bucket(Bucket=bucket)
                s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_healthy(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become healthy (logs: {self.children.log_dir})")
            time.sleep(0.1)

    # Faults (the chaos test injects them; an operator can too).

    def kill(self, name: str) -> None:
        """kill -9 of one child's process group; the stack starts it again."""
        self.children.signal(name)

    def restart_redis(self, keep_data: bool) -> None:
        self.redis.restart(keep_data)

    def restart_postgres(self) -> None:
        self.postgres.restart()

    def stop(self) -> None:
        """Stop everything; nothing the stack started keeps running."""
        self.children.stop_all()
        self.redis.stop()
        self.postgres.stop()
