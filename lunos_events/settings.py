"""All configuration, read once from `LUNOS_*` environment variables at start-up and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LUNOS_", extra="ignore")

    # HTTP server
    host: str = "127.0.0.1"
    port: int = 8787
    public_base_url: str | None = Field(
        default=None, description="Base URL for links handed to clients; defaults to the listen address."
    )
    max_body_bytes: int = 64 * 1024
    max_prompt_chars: int = 4000

    # Embedded defaults vs. scale-out
    data_dir: Path = Path(".lunos")
    database_url: str | None = Field(default=None, description="Defaults to a SQLite file in data_dir.")
    redis_url: str | None = Field(
        default=None, description="`dev` embeds a Redis when unset; `serve` and `worker` need one."
    )
    queue_name: str = "lunos:queue"
    events_channel: str = "lunos:events"

    # Provider and storage
    provider: str = Field(default="local", description="local (simulator)")
    storage: str = Field(default="local", description="local (files served by the app)")

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
    operation_deadline_seconds: float = 900.0
    start_grace_seconds: float = 60.0
    job_timeout_seconds: float = 120.0
    worker_max_jobs: int = 200
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

    # Development account created by `lunos-events dev`
    dev_account_id: str = "dev"
    dev_api_key: str | None = None
    dev_balance: str = "1000.00"
    dev_tier: str = "dev"

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _valid_retry_schedule(cls, value: str) -> str:
        from lunos_events.webhooks.schedule import parse_schedule  # stdlib only; avoids a package cycle

        parse_schedule(value)
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'lunos.db').resolve()}"

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
