"""`lunos-events generate`: submit a prompt to a running server, follow it live, save the video."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Protocol

import click

from lunos_client import DEFAULT_BASE_URL, LunosClient, LunosClientError, VideoStatus
from lunos_client.models import DEFAULT_MODEL


def describe(status: VideoStatus) -> str:
    """What a person wants to know of a status: its place in the queue, how far it is, the result."""
    if status.is_queued:
        eta = f" · ~{status.eta_seconds} s" if status.eta_seconds is not None else ""
        return f"queued #{status.queue_position}{eta}"
    if status.is_processing and status.progress is not None:
        eta = f" · ~{status.eta_seconds} s left" if status.eta_seconds is not None else ""
        return f"{status.progress}%{eta}"
    return status.video_url or status.error or ""


class StatusLines:
    """Prints each status change, each new queue place, and progress at most every `every` seconds
    (reports arrive every few seconds; a line per report would bury the status changes)."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._printed_at = float("-inf")
        self._last_line = ""

    def status(self, status: VideoStatus) -> None:
        self._print(status)

    def progress(self, status: VideoStatus) -> None:
        if status.is_queued or time.monotonic() - self._printed_at >= self._every:
            self._print(status)

    def _print(self, status: VideoStatus) -> None:
        line = f"{status.id}  {status.status}  {describe(status)}".rstrip()
        if line != self._last_line:  # the first estimate of a status is often the status itself
            self._printed_at = time.monotonic()
            self._last_line = line
            click.echo(line, err=True)


class _ProgressBar(Protocol):
    """What is used of click's progress bar (click names its class only in a private module)."""

    pos: int

    def update(self, n_steps: int) -> None: ...


def _download(client: LunosClient, status: VideoStatus, out: Path) -> Path:
    with contextlib.ExitStack() as stack:  # closes the bar, if one was drawn
        bar: _ProgressBar | None = None

        def progress(done: int, total: int | None) -> None:
            nonlocal bar
            if total is None:
                return  # no length announced: nothing to draw a bar against
            if bar is None:
                # sys.stderr, not click.get_text_stream("stderr"): that is deprecated since click 8.5.
                bar = stack.enter_context(
                    click.progressbar(length=total, label=f"saving {out}", file=sys.stderr)
                )
            bar.update(done - bar.pos)

        return client.video.download(status, out, progress=progress)


@click.command()
@click.argument("prompt")
@click.option("--wait", is_flag=True, help="Follow the generation live until it ends.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the video here (implies --wait)."
)
@click.option("--negative-prompt", default=None, help="What the video should avoid.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--app-id", envvar="LUNOS_APP_ID", default=None, help="X-App-ID (LUNOS_APP_ID).")
@click.option("--api-key", envvar="LUNOS_API_KEY", required=True, help="API key (LUNOS_API_KEY).")
@click.option("--base-url", envvar="LUNOS_BASE_URL", default=DEFAULT_BASE_URL, show_default=True)
@click.option("--max-wait", type=float, default=600.0, show_default=True, help="Seconds to wait at most.")
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds at least between two progress lines.",
)
def generate(
    prompt: str,
    wait: bool,
    out: Path | None,
    negative_prompt: str | None,
    model: str,
    app_id: str | None,
    api_key: str,
    base_url: str,
    max_wait: float,
    progress_every: float,
) -> None:
    """Generate a video from PROMPT on a running lunos-events server.

    Prints the operation id; with --wait shows each status change as it happens (its place while
    queued, its estimated progress while processing); with --out saves the finished video with a
    progress bar.
    """
    try:
        with LunosClient(api_key, base_url=base_url, app_id=app_id) as client:
            created = client.video.generate_video(prompt, model=model, negative_prompt=negative_prompt)
            if not (wait or out):
                click.echo(created.id)
                return
            lines = StatusLines(progress_every)
            final = client.video.wait(
                created,
                poll_interval=5,
                max_wait=max_wait,
                on_status=lines.status,
                on_progress=lines.progress,
            )
            if out is not None:
                click.echo(_download(client, final, out))
            else:
                click.echo(final.video_url)
    except LunosClientError as exc:
        raise click.ClickException(str(exc)) from None
