"""why an operation failed (error_code) and what it produced beyond its first video (outcome)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.JSON(), nullable=True))


def downgrade() -> None:
    # SQLite's own DROP COLUMN: recreating `operations` would break the rows that reference it.
    with op.batch_alter_table("operations", recreate="never") as batch_op:
        batch_op.drop_column("outcome")
        batch_op.drop_column("error_code")
