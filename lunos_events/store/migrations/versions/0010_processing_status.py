"""the `processing` status: an operation the provider accepted is no longer `pending`

Revision ID: 0010
Revises: 0009

Stop every API and worker process of the previous release before this runs: they finish only
`pending` operations, so they would leave `processing` ones to the new workers' tracking.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE operations SET status = 'processing' "
        "WHERE status = 'pending' AND provider_operation IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("UPDATE operations SET status = 'pending' WHERE status = 'processing'")
