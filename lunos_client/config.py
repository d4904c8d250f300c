"""Client configuration: where the server is, who is calling, and how patiently to retry."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE_URL = "http://localhost:8787"
USER_AGENT = "lunos-events-python"


@dataclass(frozen=True)
class ClientConfig:
    """Settings shared by `LunosClient` and `AsyncLunosClient`.

    `max_retries` counts retries after the first attempt, for 429, 5xx and network errors.
    Backoff doubles from `backoff_seconds` up to `max_backoff_seconds`; a `Retry-After` from the
    server replaces it, unless it asks for longer than `max_retry_after_seconds` (then the error is
    raised at once rather than blocking the caller for minutes).
    """

    api_key: str
    base_url: str = DEFAULT_BASE_URL
    app_id: str | None = None
    timeout: float = 30.0
    max_retries: int = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key is required (the server's Bearer key, e.g. lun_...)")
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        # Paths are joined onto the base URL, so one trailing slash is dropped here once.
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}
        if self.app_id is not None:
            headers["X-App-ID"] = self.app_id
        return headers
