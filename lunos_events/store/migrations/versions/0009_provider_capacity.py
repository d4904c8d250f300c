"""provider capacity: the credential that started an operation, when it was queued and started

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch_op:
        batch_op.add_column(sa.Column("provider_credential", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("queued_at_ms", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("started_at_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # SQLite's own DROP COLUMN: recreating `operations` would break the rows that reference it.
    with op.batch_alter_table("operations", recreate="never") as batch_op:
        batch_op.drop_column("started_at_ms")
        batch_op.drop_column("queued_at_ms")
        batch_op.drop_column("provider_credential")
