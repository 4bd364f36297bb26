"""Session persistence. Like the job repository, each public method is one transaction.

Closing is stored once, with its side effect on the session's queued jobs, in the same
transaction; everything else about a session is derived from its jobs on read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from emulator.domain.errors import (
    SessionNotFound,
)
from emulator.domain.jobs import PENDING, JobState, utcnow
from emulator.domain.outcomes import End, outcome
from emulator.domain.sessions import (
    SessionJobs,
    SessionMode,
    SessionPolicy,
    SessionSnapshot,
    SessionState,
    closing_reason,
    open_state,
)
from emulator.store.jobs import Repository
from emulator.store.tables import jobs, sessions
from emulator.store.transitions import transition


class SessionStore:
    """Sessions of every instance, over the job repository's engine."""

    def __init__(self, repo: Repository, policy: SessionPolicy) -> None:
        self.repo = repo
        self.policy = policy

    # -- create / read -----------------------------------------------------------------------

    def create(
        self, session_id: str, instance: str, backend: str, mode: SessionMode, max_ttl: int
    ) -> SessionSnapshot:
        now = utcnow()
        with self.repo.tx.begin() as conn:
            conn.execute(
                insert(sessions).values(
                    id=session_id,
                    instance=instance,
                    backend=backend,
                    mode=mode.value,
                    max_ttl=max_ttl,
                    interactive_ttl=self.policy.interactive_ttl,
                    accepting_jobs=True,
                    created_at=now,
                )
            )
            return self._settled(conn, session_id, instance, now)

    def get(self, instance: str, session_id: str) -> SessionSnapshot:
        """A session of `instance` as it is now: one that is due to close reads as closed,
        but a read changes nothing (the settler, or the next write, closes it)."""
        with self.repo.engine.connect().execution_options(read_only=True) as conn, conn.begin():
            row = conn.execute(
                select(sessions).where(sessions.c.id == session_id, sessions.c.instance == instance)
            ).one_or_none()
            if row is None:
                raise SessionNotFound(session_id)
            return self._settle_row(conn, row, utcnow(), write=False)

    def all(self, limit: int = 100) -> list[SessionSnapshot]:
        """The newest sessions of every instance as they are now (for the control plane)."""
        now = utcnow()
        with self.repo.engine.connect().execution_options(read_only=True) as conn, conn.begin():
            rows = conn.execute(
                select(sessions).order_by(sessions.c.created_at.desc()).limit(limit)
            ).all()
            return [self._settle_row(conn, row, now, write=False) for row in rows]

    # -- client changes ------------------------------------------------------------------------

    def set_accepting(self, instance: str, session_id: str, accepting: bool) -> SessionSnapshot:
        """`PATCH`: stop (or resume) accepting jobs; with none left the session closes now."""
        now = utcnow()
        with self.repo.tx.begin() as conn:
            current = self._settled(conn, session_id, instance, now)
            if not current.closed:
                conn.execute(
                    update(sessions)
                    .where(sessions.c.id == session_id)
                    .values(accepting_jobs=accepting)
                )
            return self._settled(conn, session_id, instance, now)

    def cancel(self, instance: str, session_id: str) -> SessionSnapshot:
        """`DELETE …/close`: close now; queued jobs never run, running ones finish."""
        now = utcnow()
        with self.repo.tx.begin() as conn:
            current = self._settled(conn, session_id, instance, now)
            if not current.closed:
                self._close(conn, session_id, "cancelled by the client", now, fail_queued=False)
            return self._settled(conn, session_id, instance, now)

    # -- rules used by job submission and the periodic settle ---------------------------------

    def for_submission(
        self, conn: Connection, instance: str, session_id: str
    ) -> SessionSnapshot | None:
        """The session a job is submitted to, in the submission's write transaction; closed
        first if it is due (so a job never slips into a session that should have closed)."""
        try:
            return self._settled(conn, session_id, instance, utcnow())
        except SessionNotFound:
            return None

    def settle_all(self) -> int:
        """Close every session that is due; the number closed."""
        now = utcnow()
        with self.repo.tx.begin() as conn:
            open_sessions = conn.execute(
                select(sessions).where(sessions.c.closed_at.is_(None))
            ).all()
            closed = 0
            for row in open_sessions:
                if self._settle_row(conn, row, now).closed:
                    closed += 1
        return closed

    # -- internals -----------------------------------------------------------------------------

    def _settled(
        self, conn: Connection, session_id: str, instance: str, now: datetime
    ) -> SessionSnapshot:
        # Write paths only: the row stays locked (PostgreSQL) until the transaction ends, so a
        # submission and a close of the same session on two nodes take turns.
        row = conn.execute(
            select(sessions)
            .where(sessions.c.id == session_id, sessions.c.instance == instance)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise SessionNotFound(session_id)
        return self._settle_row(conn, row, now)

    def _settle_row(
        self, conn: Connection, row: Row[Any], now: datetime, *, write: bool = True
    ) -> SessionSnapshot:
        """The session as of `now`; one that is due closes (`write`) or reads as closed."""
        m = row._mapping
        summary = _session_jobs(conn, m["id"])
        closed_at, reason = m["closed_at"], m["state_reason"]
        if closed_at is None:
            due = closing_reason(
                bool(m["accepting_jobs"]), m["created_at"], m["max_ttl"], summary, self.policy, now
            )
            if due is not None:
                reason, fail_queued = due
                closed_at = now
                if write:
                    self._close(conn, m["id"], reason, now, fail_queued=fail_queued)
                    summary = _session_jobs(conn, m["id"])
        state = (
            SessionState.CLOSED
            if closed_at is not None
            else open_state(summary, m["interactive_ttl"], now)
        )
        return SessionSnapshot(
            id=m["id"],
            instance=m["instance"],
            backend=m["backend"],
            mode=SessionMode(m["mode"]),
            max_ttl=m["max_ttl"],
            interactive_ttl=m["interactive_ttl"],
            accepting_jobs=bool(m["accepting_jobs"]) and closed_at is None,
            created_at=m["created_at"],
            closed_at=closed_at,
            state_reason=reason,
            state=state,
            jobs=summary,
        )

    def _close(
        self, conn: Connection, session_id: str, reason: str, now: datetime, *, fail_queued: bool
    ) -> None:
        conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.closed_at.is_(None))
            .values(closed_at=now, accepting_jobs=False, state_reason=reason)
        )
        queued = (
            conn.execute(
                select(jobs.c.id).where(
                    jobs.c.session_id == session_id, jobs.c.state == JobState.QUEUED.value
                )
            )
            .scalars()
            .all()
        )
        end = End.SESSION_EXPIRED if fail_queued else End.SESSION_CANCELLED
        for job_id in queued:
            transition(conn, job_id, outcome(end, session_id=session_id, why=reason), when=[])


def _session_jobs(conn: Connection, session_id: str) -> SessionJobs:
    pending_states = [s.value for s in PENDING]
    row = conn.execute(
        select(
            func.count().filter(jobs.c.state.in_(pending_states)),
            func.min(jobs.c.running_at),
            func.max(jobs.c.running_at),
            func.max(jobs.c.finished_at),
            func.max(jobs.c.created_at),
            func.coalesce(func.sum(jobs.c.quantum_seconds), 0.0),
        ).where(jobs.c.session_id == session_id)
    ).one()
    return SessionJobs(
        pending=int(row[0] or 0),
        first_started=row[1],
        last_started=row[2],
        last_finished=row[3],
        last_created=row[4],
        elapsed_seconds=float(row[5]),
    )
