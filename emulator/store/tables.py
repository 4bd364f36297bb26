"""SQLAlchemy Core schema. The same DDL runs on SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from emulator.domain.jobs import JobState

metadata = MetaData()

_STATES = ", ".join(f"'{s.value}'" for s in JobState)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("instance", String(255), nullable=False),
    Column("program_id", String(64), nullable=False),
    Column("backend", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("result", Text),
    Column("reason", Text),
    Column("reason_code", Integer),
    Column("reason_solution", Text),
    Column("session_id", String(64)),
    Column("log_level", String(16), nullable=False, default="WARNING"),
    Column("cost", Integer),
    Column("private", Boolean, nullable=False, default=False),
    Column("runtime", String(255)),
    Column("calibration_id", String(255)),
    Column("caller", Text),
    Column("created_at", DateTime, nullable=False),
    Column("running_at", DateTime),
    Column("finished_at", DateTime),
    Column("worker_id", String(64)),
    Column("heartbeat_at", DateTime),
    Column("attempts", Integer, nullable=False, default=0),
    # The fencing token: incremented by every claim, checked by every write of a worker.
    Column("claim_token", Integer, nullable=False, default=0, server_default="0"),
    Column("quantum_seconds", Float),
    Column("api", String(16), nullable=False, default="runtime"),
    Column("storage", Text),
    Column("time_limit", Integer),
    # Control plane: set at submission from the progression policy and outcome rules.
    Column("held", Boolean, nullable=False, default=False, server_default=false()),
    Column("release_after_polls", Integer),
    Column("polls", Integer, nullable=False, default=0, server_default="0"),
    Column("not_before", DateTime),
    Column("min_run_seconds", Float),
    Column("outcome", Text),
    Column("seed", Integer),
    CheckConstraint(f"state IN ({_STATES})", name="job_state_valid"),
)
Index("ix_jobs_instance_created", jobs.c.instance, jobs.c.api, jobs.c.created_at)
Index("ix_jobs_backend_api", jobs.c.backend, jobs.c.api)
Index("ix_jobs_state_created", jobs.c.state, jobs.c.created_at)
Index("ix_jobs_session", jobs.c.session_id)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("instance", String(255), nullable=False),
    Column("backend", String(128), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("max_ttl", Integer, nullable=False),
    Column("interactive_ttl", Integer, nullable=False),
    Column("accepting_jobs", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("closed_at", DateTime),
    Column("state_reason", Text),
    CheckConstraint("mode IN ('dedicated', 'batch')", name="session_mode_valid"),
)
Index("ix_sessions_instance", sessions.c.instance, sessions.c.created_at)

job_tags = Table(
    "job_tags",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(255), primary_key=True),
)
Index("ix_job_tags_tag", job_tags.c.tag)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
)
Index("ix_job_events_job", job_events.c.job_id, job_events.c.id)

# Control-plane state (progression, outcome rules, faults, backend states, reservations, seed):
# rows, so it persists across restarts and every process reads the same rules.
controls = Table(
    "controls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("scope", String(255), nullable=False, default="", server_default=""),
    Column("body", Text, nullable=False),
    Column("remaining", Integer),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_controls_kind", controls.c.kind, controls.c.scope, controls.c.id)


# The request journal of every node on this store, written in batches off the request path.
request_journal = Table(
    "request_journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("node", String(128), nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("api", String(32), nullable=False),
    Column("status", Integer),
    Column("duration_ms", Float, nullable=False),
    Column("instance", Text),
    Column("fault", Text),
)


# Secrets every node of one store must share (the token-signing key): a token issued by one
# API node is accepted by every other behind the same load balancer.
node_secrets = Table(
    "node_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", DateTime, nullable=False),
)
