"""`lunos-events dev`: everything in one process on embedded defaults."""

from __future__ import annotations

import json
import logging
import secrets
import shlex

from lunos_events.bus.embedded_redis import EmbeddedRedis
from lunos_events.errors import NotFound
from lunos_events.money import parse_amount
from lunos_events.runtime import Runtime, open_runtime
from lunos_events.services import accounts
from lunos_events.serving import running_processes, stop_signal, until_stopped
from lunos_events.settings import Settings

log = logging.getLogger(__name__)


async def ensure_dev_account(rt: Runtime) -> str:
    """Create the development account on first start; return its API key.

    The key is pinned by LUNOS_DEV_API_KEY, or else kept in the data dir so that every start prints
    a working key (this file exists only on embedded defaults, never in production).
    """
    settings = rt.settings
    try:
        await accounts.get_account(rt.store, settings.dev_account_id)
    except NotFound:
        await accounts.create_account(
            rt.store, settings.dev_account_id, parse_amount(settings.dev_balance), settings.dev_tier
        )
    key_file = settings.data_dir / "dev-api-key"
    key = settings.dev_api_key or (key_file.read_text().strip() if key_file.exists() else None)
    if key and await accounts.key_exists(rt.store, key, settings.dev_account_id):
        return key
    key = await accounts.create_api_key(rt.store, settings.dev_account_id, key)
    if not settings.dev_api_key:
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
    return key


def banner(settings: Settings, key: str, redis_note: str) -> str:
    base = settings.resolved_public_base_url()
    body = json.dumps(
        {
            "model": "google/veo-3.0-generate-preview",
            "prompt": "A cinematic shot of a majestic lion in the savannah.",
        }
    )
    return "\n".join(
        [
            f"lunos-events is running at {base}",
            f"  database: {settings.resolved_database_url()}",
            f"  redis:    {redis_note}",
            f"  provider: {settings.resolved_provider()}   storage: {settings.storage}",
            "  webhooks: "
            + (
                "private and loopback targets allowed (development only)"
                if settings.webhook_allow_private
                else "public targets only"
            ),
            "  metrics:  "
            + (
                "/metrics open to anyone (development only; set LUNOS_METRICS_TOKEN to protect it)"
                if settings.metrics_open and not settings.metrics_token
                else "/metrics needs the LUNOS_METRICS_TOKEN bearer token"
            ),
            "",
            f"Development account {settings.dev_account_id!r}, API key:",
            f"  {key}",
            "",
            "Try it:",
            f"  curl -X POST {base}/v1/video/generations \\",
            f'    -H "Authorization: Bearer {key}" \\',
            '    -H "Content-Type: application/json" -H "X-App-ID: my-app" \\',
            f"    -d {shlex.quote(body)}",
            "",
            f"Or open {base}/ in a browser, paste the key and watch a job live.",
            "",
            "Press Ctrl-C to stop.",
        ]
    )


async def serve_dev(settings: Settings, redis_note: str) -> None:
    stop = stop_signal()
    async with open_runtime(settings) as rt:
        key = await ensure_dev_account(rt)  # before the port opens, so the printed key always works
        async with running_processes(rt):
            print(banner(settings, key, redis_note), flush=True)
            await until_stopped(stop)
            print("Stopping…", flush=True)


def dev_webhook_settings(settings: Settings) -> Settings:
    """`dev` lets webhooks reach loopback and private addresses (local receivers) unless
    LUNOS_WEBHOOK_ALLOW_PRIVATE says otherwise; the banner says so. `serve` never does."""
    if "webhook_allow_private" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"webhook_allow_private": True})


def dev_metrics_settings(settings: Settings) -> Settings:
    """`dev` serves /metrics to anyone unless LUNOS_METRICS_TOKEN is set; the banner says so."""
    if settings.metrics_token or "metrics_open" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"metrics_open": True})


def dev_settings_with_stream_secret(settings: Settings) -> Settings:
    """Settings with a stream token secret: LUNOS_STREAM_TOKEN_SECRET, or one kept in the data dir.

    Kept on disk (like the development key) so `events_url` links stay valid across restarts.
    """
    if settings.stream_token_secret:
        return settings
    secret_file = settings.data_dir / "stream-token-secret"
    secret = secret_file.read_text().strip() if secret_file.exists() else ""
    if not secret:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_hex(32)
        secret_file.write_text(secret + "\n")
        secret_file.chmod(0o600)
    return settings.model_copy(update={"stream_token_secret": secret})


def dev_settings_with_redis(settings: Settings) -> tuple[Settings, EmbeddedRedis | None]:
    if settings.redis_url:
        return settings, None
    # Random per start: only this process (given the URL) needs it.
    embedded = EmbeddedRedis(settings.data_dir / "redis", password=secrets.token_urlsafe(24))
    return settings.model_copy(update={"redis_url": embedded.url}), embedded
