"""All configuration, read once from `LUNOS_*` environment variables at start-up and passed down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lunos_events.durations import parse_schedule


class TierLimits(BaseModel):
    """How much one account of a tier may do at once and per minute.

    Fields added after the first two have defaults, so a LUNOS_TIERS written before them still
    reads (and gets the `standard` figures for them; for queue_weight, 1: the plain round-robin).
    """

    submits_per_minute: int = Field(ge=0)
    max_in_flight: int = Field(ge=0)
    max_streams: int = Field(default=20, ge=0, description="open SSE streams, across API processes")
    max_webhook_endpoints: int = Field(default=10, ge=0)
    webhook_sends_per_minute: int = Field(default=20, ge=0, description="/test and /redeliver")
    reads_per_minute: int = Field(
        default=600, ge=0, description="list, usage and stream-token requests, per API key"
    )
    queue_weight: int = Field(
        default=1,
        ge=1,
        description="starts per turn in the provider queue's round-robin, where a weight-1 account gets one",
    )


DEFAULT_TIERS = {
    "free": TierLimits(
        submits_per_minute=10,
        max_in_flight=2,
        max_streams=5,
        max_webhook_endpoints=3,
        webhook_sends_per_minute=5,
        reads_per_minute=120,
    ),
    # A weight is how many starts an account gets per turn when the provider's capacity is short.
    # Kept small: every unit is one more start another account's single submit may wait behind
    # (fair_queue.py). Paying tiers get more of a scarce quota, but never all of it.
    "standard": TierLimits(submits_per_minute=60, max_in_flight=10, queue_weight=2),
    "pro": TierLimits(
        submits_per_minute=300,
        max_in_flight=50,
        max_streams=100,
        max_webhook_endpoints=25,
        webhook_sends_per_minute=60,
        reads_per_minute=3000,
        queue_weight=3,
    ),
    "dev": TierLimits(
        submits_per_minute=1000,
        max_in_flight=500,
        max_streams=1000,
        max_webhook_endpoints=100,
        webhook_sends_per_minute=600,
        reads_per_minute=10000,
    ),
}


class ProviderCredential(BaseModel):
    """One provider credential and the capacity Google grants it (a Vertex AI project + location,
    or an express-mode API key). Unset limits are unlimited; `models` empty: every model."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    api_key: str | None = None
    project: str | None = None
    location: str | None = None
    starts_per_minute: int | None = Field(default=None, ge=1)
    max_in_flight: int | None = Field(default=None, ge=1)
    models: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LUNOS_", extra="ignore")

    # HTTP server
    host: str = "127.0.0.1"
    port: int = 8787
    public_base_url: str | None = Field(
        default=None, description="Base URL for links handed to clients; defaults to the listen address."
    )
    max_body_bytes: int = 64 * 1024
    metrics_token: str | None = Field(
        default=None,
        repr=False,
        description="Bearer token `GET /metrics` requires; unset: /metrics is off (`dev` leaves it open).",
    )
    metrics_open: bool = Field(
        default=False, description="Serve /metrics without a token (`dev` sets it when no token is set)."
    )
    max_prompt_chars: int = 4000
    max_image_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest input image (decoded bytes); a submit carrying images may be larger by "
        "that much per image (base64).",
    )
    input_url_allow_private: bool = Field(
        default=False,
        description="Let image URLs use http:// and reach loopback/private addresses (development, tests).",
    )
    input_fetch_timeout_seconds: float = Field(default=20.0, gt=0)
    http_max_head_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request head (request line and headers): else 431."
    )
    http_max_headers: int = Field(default=100, ge=8, description="Most headers in a request: else 431.")
    http_head_timeout_seconds: float = Field(
        default=5.0, gt=0, description="A request's head must arrive within this of the connection's start."
    )
    http_body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request's body must arrive within this of its head's end."
    )
    http_keep_alive_seconds: float = Field(
        default=5.0, gt=0, description="Idle keep-alive connections close."
    )
    http_max_connections: int = Field(
        default=10_000, ge=1, description="Open connections (streams included); more are closed at once."
    )

    # Embedded defaults vs. scale-out
    data_dir: Path = Path(".lunos")
    database_url: str | None = Field(default=None, description="Defaults to a SQLite file in data_dir.")
    database_pool_size: int = Field(
        default=40,
        ge=1,
        description="PostgreSQL connections per process, opened as needed and kept (no overflow).",
    )
    redis_url: str | None = Field(
        default=None, description="`dev` embeds a Redis when unset; `serve` and `worker` need one."
    )
    queue_name: str = "lunos:queue"
    events_channel: str = "lunos:events"
    redis_key_prefix: str = Field(default="lunos", description="Prefix of the keys kept in Redis (limits).")

    # Provider and storage
    provider: str | None = Field(
        default=None, description="local (simulator) or google (Veo); unset: google when credentials are set"
    )
    storage: str = Field(default="local", description="local (files served by the app) or r2 (S3 API)")
    catalog: Path | None = Field(
        default=None,
        description="An operator's model catalog (TOML) that replaces, or extends, the shipped one.",
    )

    # Google Veo through google-genai. Credentials use the SDK's own variable names.
    google_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("google_api_key", "lunos_google_api_key")
    )
    google_cloud_project: str | None = Field(
        default=None, validation_alias=AliasChoices("google_cloud_project", "lunos_google_cloud_project")
    )
    google_cloud_location: str | None = Field(
        default=None, validation_alias=AliasChoices("google_cloud_location", "lunos_google_cloud_location")
    )
    google_genai_use_vertexai: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("google_genai_use_vertexai", "lunos_google_genai_use_vertexai"),
    )
    google_base_url: str | None = Field(default=None, description="Overrides the Google endpoint (tests).")
    google_start_attempts: int = Field(default=4, ge=1, description="Tries to start one generation.")
    google_retry_initial_seconds: float = 1.0
    google_retry_max_seconds: float = 8.0
    google_request_timeout_seconds: float = 60.0
    # The credential pool (JSON list of ProviderCredential); unset: one credential from the above.
    google_credentials: list[ProviderCredential] = Field(default_factory=list)
    # Capacity of the single credential made from google_api_key / google_cloud_project.
    google_starts_per_minute: int | None = Field(default=None, ge=1)
    google_max_in_flight: int | None = Field(default=None, ge=1)
    capacity_cooldown_seconds: float = Field(
        default=5.0, gt=0, description="First cool-down of a credential that answered 429/5xx (doubles)."
    )
    capacity_cooldown_max_seconds: float = Field(default=120.0, gt=0)

    # Cloudflare R2 (or any S3 endpoint) through aioboto3
    r2_endpoint_url: str | None = None
    r2_bucket: str | None = None
    r2_access_key_id: str | None = None
    r2_secret_access_key: str | None = None
    r2_region: str = "auto"
    r2_public_base_url: str | None = Field(
        default=None, description="Public custom domain of the bucket; unset: presigned GET URLs."
    )
    r2_presign_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600)
    r2_presign_refresh_seconds: int = Field(
        default=24 * 3600, ge=0, description="Status reads re-sign a URL that expires sooner than this."
    )
    r2_multipart_threshold_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    r2_multipart_chunk_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    r2_max_attempts: int = Field(default=5, ge=1)

    # Local simulator
    simulator_latency_seconds: float = 4.0
    simulator_width: int = 1280
    simulator_height: int = 720
    simulator_fps: int = 24
    simulator_video_seconds: float | None = Field(
        default=None, description="Length of rendered videos; defaults to the requested duration."
    )

    # Worker
    poll_interval_seconds: float = 5.0
    progress_event_seconds: float = Field(
        default=5.0, gt=0, description="At least this long between an operation's video.progress events."
    )
    operation_deadline_seconds: float = 900.0
    start_grace_seconds: float = 60.0
    job_timeout_seconds: float = 120.0
    worker_max_jobs: int = 200
    log_format: Literal["text", "json"] = Field(
        default="text", description="text, or json (one object per line)"
    )
    fault_point: str | None = Field(default=None, description="Test hook, see lunos_events.faults.")

    # Webhooks (see lunos_events/webhooks/)
    webhook_retry_schedule: str = Field(
        default="5s,5m,30m,2h,5h,10h,10h",
        description="Delays between delivery attempts (units ms, s, m, h); one retry per entry.",
    )
    webhook_timeout_seconds: float = 15.0
    webhook_allow_private: bool = Field(
        default=False, description="Allow loopback/private targets (development and tests only)."
    )
    webhook_rotation_overlap_seconds: float = 24 * 3600.0
    webhook_disable_after_seconds: float = Field(
        default=5 * 24 * 3600.0, description="An endpoint failing continuously this long is disabled."
    )

    # Limits and idempotency
    tiers: dict[str, TierLimits] = Field(
        default_factory=lambda: dict(DEFAULT_TIERS),
        description="Limits per account tier, as JSON; an account of an unknown tier gets `free`'s.",
    )
    rate_limit_window_seconds: float = Field(
        default=60.0, gt=0, description="The sliding window `submits_per_minute` counts over."
    )
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    idempotency_claim_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="After this, a key whose request died holding it answers with its operation, or is free.",
    )

    # Retention (the worker prunes hourly, in batches; 0 keeps for ever)
    retention_webhook_days: float = Field(
        default=30.0, ge=0, description="Finished webhook deliveries and their attempts are kept this long."
    )
    retention_events_days: float = Field(
        default=30.0,
        ge=0,
        description="Events are kept this long past their operation's end (each operation's last one "
        "for ever).",
    )
    retention_batch_size: int = Field(default=500, ge=1, description="Rows removed per transaction.")
    video_retention_days: float = Field(
        default=0.0,
        ge=0,
        description="Videos of completed generations are deleted this long after; 0: never.",
    )

    # Live status: SSE streams, stream tokens, CORS
    stream_token_secret: str | None = Field(
        default=None,
        repr=False,
        description="HMAC key of stream tokens, shared by every API process; `dev` generates one.",
    )
    stream_token_ttl_seconds: int = Field(default=3600, ge=10)
    auth_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long an API process reuses a key lookup: the most a revoked key keeps working.",
    )
    status_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long an API process may answer a poll of a pending operation from memory "
        "when it hears no event of it: the most a poll lags if an event is lost.",
    )
    stream_key_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often an API process checks in the database that the keys behind its open "
        "streams are live: the longest a stream outlives its key if the revocation message is lost.",
    )
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    sse_retry_ms: int = Field(default=3000, ge=0)
    sse_queue_size: int = Field(default=256, ge=1, description="Events buffered per stream before it is cut.")
    sse_send_timeout_seconds: float = Field(default=10.0, gt=0)
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (comma-separated)."
    )

    # Operators: the admin API (/v1/admin/...) and the console (/admin)
    admin_token: str | None = Field(
        default=None,
        repr=False,
        min_length=16,
        description="Bearer token of the admin API and console; unset, both are switched off (404).",
    )

    # Development account created by `lunos-events dev`
    dev_account_id: str = "dev"
    dev_api_key: str | None = None
    dev_balance: str = "1000.00"
    dev_tier: str = "dev"

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _valid_retry_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    def as_env(self) -> dict[str, str]:
        """The `LUNOS_*` variables that give another process these same settings."""
        env = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None or value == []:
                continue  # the default
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                value = ",".join(value)  # list settings are comma-separated
            elif isinstance(value, (dict, list)):
                value = json.dumps(value)
            env[f"LUNOS_{name.upper()}"] = str(value)
        return env

    def tier_limits(self, tier: str) -> TierLimits:
        return self.tiers.get(tier) or self.tiers.get("free") or DEFAULT_TIERS["free"]

    def queue_weight(self, tier: str) -> int:
        """How many starts an account of `tier` takes per turn of the provider queue."""
        return self.tier_limits(tier).queue_weight

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'lunos.db').resolve()}"

    def resolved_provider(self) -> str:
        if self.provider:
            return self.provider
        google = self.google_api_key or self.google_cloud_project or self.google_credentials
        return "google" if google else "local"

    def provider_credentials(self) -> list[ProviderCredential]:
        """The credential pool: LUNOS_GOOGLE_CREDENTIALS, else one credential named "default"."""
        if self.google_credentials:
            return list(self.google_credentials)
        return [
            ProviderCredential(
                name="default",
                api_key=self.google_api_key,
                project=self.google_cloud_project,
                location=self.google_cloud_location,
                starts_per_minute=self.google_starts_per_minute,
                max_in_flight=self.google_max_in_flight,
            )
        ]

    def resolved_public_base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def videos_dir(self) -> Path:
        return self.data_dir / "videos"
