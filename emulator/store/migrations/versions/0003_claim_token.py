"""A fencing token per job: every claim increments it, every write of a worker checks it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing jobs get 0: a job Running at upgrade time is recovered by the sweep (its
    # worker, of the previous release, cannot write any more), then claimed with token 1.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("claim_token", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("claim_token")
