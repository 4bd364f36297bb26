"""Runtime sessions and batches: their states and the rules that move them.

Only what clients set is stored (mode, backend, TTLs, `accepting_jobs`, closing); the rest
(`activated_at`, `last_job_*`, `elapsed_time`, open/active/inactive) is derived from the
session's jobs whenever it is read, so it can never disagree with them. Closing is the one
transition with side effects (queued jobs end), so it is stored, by whoever notices first:
a read, a submission, or the periodic settle.

IBM's rules (run-jobs-session / run-jobs-batch guides): the session starts when its first job
starts; `max_ttl` counts from then, and when it is reached the session closes, running jobs
finish and queued ones fail; after a job ends the session stays active for the interactive
TTL, then goes inactive until its next job; `accepting_jobs: false` closes it as soon as no
job is left; a session that gets no job for 30 minutes closes; cancelling (`DELETE …/close`)
closes it at once and queued jobs never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from emulator.domain.errors import SessionBackendMismatch, SessionClosed, UnknownSessionInRequest


class SessionMode(StrEnum):
    """Dedicated sessions run their jobs one at a time, ahead of others; batches in parallel."""

    DEDICATED = "dedicated"
    BATCH = "batch"


class SessionState(StrEnum):
    OPEN = "open"
    ACTIVE = "active"
    INACTIVE = "inactive"
    CLOSED = "closed"


@dataclass(frozen=True)
class SessionPolicy:
    """Server-wide session timing (seconds)."""

    default_max_ttl: int = 28800
    interactive_ttl: int = 60
    idle_close: int = 1800


@dataclass(frozen=True)
class SessionRequest:
    """A validated `POST /sessions`."""

    mode: SessionMode
    backend: str
    max_ttl: int | None = None


@dataclass(frozen=True)
class SessionJobs:
    """What a session's jobs say about it."""

    pending: int = 0  # Queued + Running
    first_started: datetime | None = None
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_created: datetime | None = None
    elapsed_seconds: float = 0.0


@dataclass(frozen=True)
class SessionSnapshot:
    """A session as of one read, with its derived fields."""

    id: str
    instance: str
    backend: str
    mode: SessionMode
    max_ttl: int
    interactive_ttl: int
    accepting_jobs: bool
    created_at: datetime
    closed_at: datetime | None
    state_reason: str | None
    state: SessionState
    jobs: SessionJobs

    @property
    def activated_at(self) -> datetime | None:
        return self.jobs.first_started

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


def closing_reason(
    accepting_jobs: bool,
    created_at: datetime,
    max_ttl: int,
    jobs: SessionJobs,
    policy: SessionPolicy,
    now: datetime,
) -> tuple[str, bool] | None:
    """Why an open session must close now, and whether its queued jobs fail; None: it stays."""
    if jobs.first_started is not None and now >= jobs.first_started + timedelta(seconds=max_ttl):
        return f"max_ttl of {max_ttl} s expired", True
    if not accepting_jobs and jobs.pending == 0:
        return "closed by the client and no jobs are left", False
    last_activity = max(t for t in (created_at, jobs.last_created, jobs.last_finished) if t)
    if jobs.pending == 0 and now >= last_activity + timedelta(seconds=policy.idle_close):
        return f"no jobs for {policy.idle_close} s", False
    return None


def open_state(jobs: SessionJobs, interactive_ttl: int, now: datetime) -> SessionState:
    """open (nothing ran yet), active (work pending or recent), or inactive."""
    if jobs.first_started is None:
        return SessionState.OPEN
    if jobs.pending > 0:
        return SessionState.ACTIVE
    if jobs.last_finished is not None and now < jobs.last_finished + timedelta(
        seconds=interactive_ttl
    ):
        return SessionState.ACTIVE
    return SessionState.INACTIVE


def check_session_admits(session: SessionSnapshot | None, session_id: str, backend: str) -> None:
    """Refuse a job for a session that does not exist here, is closed, no longer accepts jobs,
    or runs on another backend."""
    if session is None:
        raise UnknownSessionInRequest(session_id)
    if session.closed:
        raise SessionClosed(
            f"Session {session_id} is closed ({session.state_reason}); it does not accept jobs."
        )
    if not session.accepting_jobs:
        raise SessionClosed(
            f"Session {session_id} is not accepting jobs: it was closed by the client and "
            "ends when its last job ends."
        )
    if session.backend != backend:
        raise SessionBackendMismatch(
            f"Session {session_id} runs on {session.backend}, not on {backend}."
        )
