"""Baseline: the schema of the last release before Alembic (tables as created by create_all,
with every column the add-missing-columns step had added).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=255), server_default="", nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_controls_kind", "controls", ["kind", "scope", "id"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reason_code", sa.Integer(), nullable=True),
        sa.Column("reason_solution", sa.Text(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("log_level", sa.String(length=16), nullable=False),
        sa.Column("cost", sa.Integer(), nullable=True),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("runtime", sa.String(length=255), nullable=True),
        sa.Column("calibration_id", sa.String(length=255), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("running_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("quantum_seconds", sa.Float(), nullable=True),
        sa.Column("api", sa.String(length=16), nullable=False),
        sa.Column("storage", sa.Text(), nullable=True),
        sa.Column("time_limit", sa.Integer(), nullable=True),
        sa.Column("held", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("release_after_polls", sa.Integer(), nullable=True),
        sa.Column("polls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("min_run_seconds", sa.Float(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name="job_state_valid",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobs_backend_api", "jobs", ["backend", "api"], unique=False)
    op.create_index(
        "ix_jobs_instance_created", "jobs", ["instance", "api", "created_at"], unique=False
    )
    op.create_index("ix_jobs_session", "jobs", ["session_id"], unique=False)
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("backend", sa.String(length=128), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("max_ttl", sa.Integer(), nullable=False),
        sa.Column("interactive_ttl", sa.Integer(), nullable=False),
        sa.Column("accepting_jobs", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("mode IN ('dedicated', 'batch')", name="session_mode_valid"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sessions_instance", "sessions", ["instance", "created_at"], unique=False)
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_events_job", "job_events", ["job_id", "id"], unique=False)
    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "tag"),
    )
    op.create_index("ix_job_tags_tag", "job_tags", ["tag"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_tags_tag", table_name="job_tags")
    op.drop_table("job_tags")
    op.drop_index("ix_job_events_job", table_name="job_events")
    op.drop_table("job_events")
    op.drop_index("ix_sessions_instance", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_jobs_state_created", table_name="jobs")
    op.drop_index("ix_jobs_session", table_name="jobs")
    op.drop_index("ix_jobs_instance_created", table_name="jobs")
    op.drop_index("ix_jobs_backend_api", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_controls_kind", table_name="controls")
    op.drop_table("controls")
