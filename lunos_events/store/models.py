"""SQLModel tables. The database is the source of truth; times are unix milliseconds, money is cents."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, text
from sqlmodel import Field, SQLModel

PENDING = "pending"  # accepted, waiting for its start at the provider (queued or starting)
PROCESSING = "processing"  # the provider accepted it and is generating
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED})
# Not ended yet: cancellable, tracked by the worker, holding its account's in-flight slot.
ACTIVE_STATUSES = (PENDING, PROCESSING)
# Not a step of the generation: an ended operation whose video its owner (or retention) removed.
DELETED = "deleted"


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(primary_key=True, max_length=64)
    balance_cents: int = Field(default=0, sa_type=BigInteger)
    tier: str = Field(default="free", max_length=32)
    # Last per-account event sequence number handed out; bumped in the same transaction as the event.
    event_seq: int = Field(default=0, sa_type=BigInteger)
    # Bumped in the same transaction as every change to the account's webhook endpoints, and read
    # with `event_seq`: storing an event reuses the endpoints it last read while this is unchanged.
    webhooks_version: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    # The highest seq retention removed: a stream resumed from an older Last-Event-ID is told of the
    # gap (a `stream.reset` event) rather than silently missing what was pruned.
    events_pruned_seq: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    created_at_ms: int = Field(sa_type=BigInteger)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    key_hash: str = Field(primary_key=True, max_length=64)
    prefix: str = Field(index=True, max_length=16)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=64)
    created_at_ms: int = Field(sa_type=BigInteger)
    revoked_at_ms: int | None = Field(default=None, sa_type=BigInteger)


class Operation(SQLModel, table=True):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_account_created", "account_id", "created_at_ms"),
        Index("ix_operations_completed", "completed_at_ms"),  # retention finds ended operations
    )

    id: str = Field(primary_key=True, max_length=160)
    account_id: str = Field(foreign_key="accounts.id", max_length=64)
    app_id: str | None = Field(default=None, index=True, max_length=128)
    model: str = Field(max_length=128)
    provider_model: str = Field(max_length=128)
    prompt: str = Field(sa_type=Text)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(index=True, max_length=16)
    provider_operation: str | None = Field(default=None, max_length=512)
    video_key: str = Field(max_length=512)
    video_url: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)
    # Why it failed (lunos_events.errors.ERROR_CODES), next to the readable `error`.
    error_code: str | None = Field(default=None, max_length=32)
    # What the status adds to video_url/error: video_urls and thumbnail_url, or the safety details.
    outcome: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    cost_cents: int = Field(sa_type=BigInteger)
    refunded: bool = Field(default=False)
    created_at_ms: int = Field(sa_type=BigInteger)
    updated_at_ms: int = Field(sa_type=BigInteger)
    completed_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    deadline_at_ms: int = Field(sa_type=BigInteger)
    # Provider capacity: the pool credential that started it (claimed before the provider call, so
    # a start happens at most once), when it went into the queue, and when its start was claimed.
    provider_credential: str | None = Field(default=None, max_length=64)
    queued_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    started_at_ms: int | None = Field(default=None, sa_type=BigInteger)


class Event(SQLModel, table=True):
    """Every status change, stored before it is published (a transactional outbox)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_operation", "operation_id", "seq"),
        Index(
            "ix_events_unpublished",
            "created_at_ms",
            sqlite_where=text("published_at_ms IS NULL"),
            postgresql_where=text("published_at_ms IS NULL"),
        ),
    )

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=64)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    operation_id: str = Field(max_length=160)
    app_id: str | None = Field(default=None, max_length=128)
    type: str = Field(max_length=64)
    # The status object exactly as clients saw it at that moment, kept as JSON text to replay verbatim.
    data: str = Field(sa_type=Text)
    created_at_ms: int = Field(sa_type=BigInteger)
    published_at_ms: int | None = Field(default=None, sa_type=BigInteger)


class IdempotencyKey(SQLModel, table=True):
    """A submit's `Idempotency-Key`: the first request claims it, repeats get its response back."""

    __tablename__ = "idempotency_keys"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=64)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    # NULL while the first request is still being handled.
    response: str | None = Field(default=None, sa_type=Text)
    # The operation it created, written in the same transaction as the charge: a repeat after its
    # request died (the API process killed, the database lost) answers with that operation.
    operation_id: str | None = Field(default=None, max_length=160)
    # Also the claim's fencing token: a claim taken over after its request died has a new one.
    created_at_ms: int = Field(sa_type=BigInteger)
    expires_at_ms: int = Field(sa_type=BigInteger, index=True)


# Registered on the same metadata, so `ensure_schema` creates them too.
from lunos_events.store import admin_models, webhook_models  # noqa: E402, F401
