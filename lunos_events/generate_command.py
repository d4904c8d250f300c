"""`lunos-events generate`: submit a prompt to a running server, follow it live, save the video."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Protocol

import click

from lunos_client import DEFAULT_BASE_URL, LunosClient, LunosClientError, VideoStatus
from lunos_client.models import DEFAULT_MODEL


def _show_status(status: VideoStatus) -> None:
    detail = status.video_url or status.error or ""
    click.echo(f"{status.id}  {status.status}  {detail}".rstrip(), err=True)


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
) -> None:
    """Generate a video from PROMPT on a running lunos-events server.

    Prints the operation id; with --wait shows each status change as it happens; with --out saves
    the finished video with a progress bar.
    """
    try:
        with LunosClient(api_key, base_url=base_url, app_id=app_id) as client:
            created = client.video.generate_video(prompt, model=model, negative_prompt=negative_prompt)
            if not (wait or out):
                click.echo(created.id)
                return
            final = client.video.wait(created, poll_interval=5, max_wait=max_wait, on_status=_show_status)
            if out is not None:
                click.echo(_download(client, final, out))
            else:
                click.echo(final.video_url)
    except LunosClientError as exc:
        raise click.ClickException(str(exc)) from None
