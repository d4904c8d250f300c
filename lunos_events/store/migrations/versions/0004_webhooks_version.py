"""a version of each account's webhook endpoints

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(
            sa.Column("webhooks_version", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    # SQLite's own DROP COLUMN: recreating the table would drop `accounts`, which rows of other
    # tables reference (foreign keys are enforced).
    with op.batch_alter_table("accounts", recreate="never") as batch_op:
        batch_op.drop_column("webhooks_version")
