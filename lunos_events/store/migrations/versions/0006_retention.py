"""retention: where pruning stopped per account, and the indexes the pruning scans use

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(
            sa.Column("events_pruned_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_index("ix_operations_completed", "operations", ["completed_at_ms"])
    op.create_index("ix_webhook_deliveries_created", "webhook_deliveries", ["created_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_created", table_name="webhook_deliveries")
    op.drop_index("ix_operations_completed", table_name="operations")
    # SQLite's own DROP COLUMN (see 0004): recreating `accounts` would break the references to it.
    with op.batch_alter_table("accounts", recreate="never") as batch_op:
        batch_op.drop_column("events_pruned_seq")
