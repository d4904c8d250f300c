"""the operation an Idempotency-Key's request created, recorded with the charge

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.add_column(sa.Column("operation_id", sa.String(length=160), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", recreate="never") as batch_op:
        batch_op.drop_column("operation_id")
