"""Webhook tables: endpoints, the account's default secret, per-request subscriptions, deliveries and
their attempts. A delivery row is written in the same transaction as the event it carries, so no
status change can be stored without the deliveries it owes."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Text, text
from sqlmodel import Field, SQLModel

DELIVERY_PENDING = "pending"
DELIVERY_DELIVERED = "delivered"
DELIVERY_FAILED = "failed"


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=64)
    app_id: str | None = Field(default=None, max_length=128)
    url: str = Field(sa_type=Text)
    description: str | None = Field(default=None, sa_type=Text)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    disabled_reason: str | None = Field(default=None, sa_type=Text)
    secret: str = Field(max_length=80)
    # During a rotation the previous secret keeps signing (alongside the new one) until it expires.
    previous_secret: str | None = Field(default=None, max_length=80)
    previous_secret_expires_at_ms: int | None = Field(default=None, sa_type=BigInteger)
    # Start of the current run of failed attempts; cleared by any success.
    failing_since_ms: int | None = Field(default=None, sa_type=BigInteger)
    created_at_ms: int = Field(sa_type=BigInteger)
    updated_at_ms: int = Field(sa_type=BigInteger)


class WebhookDefaultSecret(SQLModel, table=True):
    """The account's secret for per-request (`"webhook"` in the submit body) deliveries."""

    __tablename__ = "webhook_default_secrets"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=64)
    secret: str = Field(max_length=80)
    created_at_ms: int = Field(sa_type=BigInteger)


class OperationWebhook(SQLModel, table=True):
    """A webhook given with one submit; stored with the operation, in the same transaction."""

    __tablename__ = "operation_webhooks"

    operation_id: str = Field(primary_key=True, max_length=160)
    account_id: str = Field(foreign_key="accounts.id", max_length=64)
    url: str = Field(sa_type=Text)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class WebhookDelivery(SQLModel, table=True):
    """One message owed to one target. Its id is the `webhook-id` header, stable across retries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at_ms"),
        Index("ix_webhook_deliveries_event", "account_id", "event_seq"),
        Index("ix_webhook_deliveries_created", "created_at_ms"),  # retention
        Index(
            "ix_webhook_deliveries_pending",
            "next_attempt_at_ms",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=64)
    # Null for per-request webhooks (signed with the account's default secret).
    endpoint_id: str | None = Field(default=None, max_length=40)
    url: str = Field(sa_type=Text)
    event_seq: int | None = Field(default=None, sa_type=BigInteger)
    event_type: str = Field(max_length=64)
    # The exact body, fixed at creation so every retry signs and sends the same bytes.
    payload: str = Field(sa_type=Text)
    status: str = Field(default=DELIVERY_PENDING, max_length=16)
    attempts: int = Field(default=0)
    # Bumped by a manual redelivery, so jobs of an earlier round stop.
    round: int = Field(default=0)
    # A drain job that claimed this (first) attempt owns it until then; see webhooks/drain.py.
    claimed_until_ms: int = Field(default=0, sa_type=BigInteger)
    next_attempt_at_ms: int = Field(sa_type=BigInteger)
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at_ms: int = Field(sa_type=BigInteger)
    delivered_at_ms: int | None = Field(default=None, sa_type=BigInteger)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(index=True, max_length=40)
    attempted_at_ms: int = Field(sa_type=BigInteger)
    status_code: int | None = None
    latency_ms: int = Field(sa_type=BigInteger)
    response_body: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)
