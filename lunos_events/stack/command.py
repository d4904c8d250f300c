"""The `lunos-events stack` command: start the stack, show where it is, stop it on Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import threading
from types import FrameType

import click

from lunos_events.stack.stack import ProductionStack, StackOptions, lunos_command


def _create_account(stack: ProductionStack, account: str) -> str:
    """A funded account and its API key, made by the operator commands against the stack's database."""
    env = stack.environment()
    for args in (
        ("users", "create", account, "--balance", "100.00", "--tier", "pro"),
        ("keys", "create", account),
    ):
        done = subprocess.run(lunos_command(*args), env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 and "exists" not in done.stderr:
            raise RuntimeError(f"lunos-events {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def run_stack(options: StackOptions, account: str) -> None:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = ProductionStack(options)
    try:
        click.echo(f"starting the stack in {stack.data_dir} …")
        stack.start()
        key = _create_account(stack, account)
        env = stack.environment()
        click.echo(
            f"lunos-events stack: {stack.url} (nginx) → "
            + ", ".join(
                f"{name} :{port}" for name, port in zip(stack.api_names, stack.api_ports, strict=True)
            )
            + f"; {len(stack.worker_names)} worker(s)\n"
            f"  PostgreSQL {env['LUNOS_DATABASE_URL']}\n"
            f"  Redis      {env['LUNOS_REDIS_URL']} (append-only file in {stack.redis.workdir})\n"
            f"  S3 (moto)  {env['LUNOS_R2_ENDPOINT_URL']}, bucket {env['LUNOS_R2_BUCKET']}\n"
            f"  logs       {stack.children.log_dir}\n"
            f"API key for {account}:\n{key}\n"
            "Ctrl-C stops everything."
        )
        while not stop.wait(0.5):
            pass
    finally:
        click.echo("stopping the stack …")
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
