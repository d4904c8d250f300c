"""Operator tables: the audit log of admin actions, and the ledger of balance changes made by hand."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class AdminAudit(SQLModel, table=True):
    """One row per admin action that changed something: who, what, on what, when."""

    __tablename__ = "admin_audit"

    id: int | None = Field(default=None, primary_key=True)
    at_ms: int = Field(sa_type=BigInteger, index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    target: str | None = Field(default=None, max_length=200)
    # The action's parameters as compact JSON text (never a secret: keys and tokens are left out).
    detail: str | None = Field(default=None, sa_type=Text)


class BalanceLedger(SQLModel, table=True):
    """A manual credit or debit, written in the same transaction as the balance change."""

    __tablename__ = "balance_ledger"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_balance_ledger_idempotency"),
        Index("ix_balance_ledger_account_created", "account_id", "created_at_ms"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="accounts.id", max_length=64)
    amount_cents: int = Field(sa_type=BigInteger)
    balance_after_cents: int = Field(sa_type=BigInteger)
    note: str = Field(sa_type=Text)
    actor: str = Field(max_length=64)
    # A repeated request with the same key changes nothing and answers the first entry.
    idempotency_key: str | None = Field(default=None, max_length=255)
    created_at_ms: int = Field(sa_type=BigInteger)
