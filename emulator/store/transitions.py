"""The one way a job changes state — `transition()` — and the claim, the only other statement
that does (Queued → Running for a worker, in `claim_next`).

`transition` takes the caller's connection, so it joins whatever transaction the caller has
open (closing a session, recovering a worker's jobs, cancelling, recording a worker's outcome
all call it). The state precondition is in the UPDATE's WHERE clause (`ALLOWED_FROM`), never a
Python `if` before it, so two racing writers cannot both win. Every change is logged as a job
event and remembered on the connection; `Transaction` announces the changed jobs after commit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    case,
    false,
    func,
    insert,
    or_,
    select,
    update,
)

from emulator.domain.jobs import ALLOWED_FROM, TERMINAL, JobState, Lease, Owner, utcnow
from emulator.domain.outcomes import Outcome
from emulator.store.signals import Change, publish
from emulator.store.tables import job_events, jobs, sessions

_CHANGED = "emulator.changed_jobs"


def owned_by(owner: Owner) -> tuple[Any, ...]:
    """The WHERE conditions that keep a statement to one owner's jobs."""
    return (jobs.c.instance == owner.instance, jobs.c.api == owner.api.value)


def held(lease: Lease) -> tuple[Any, ...]:
    """The WHERE conditions of a write by the worker holding `lease` (the fencing check)."""
    return (
        jobs.c.worker_id == lease.worker_id,
        jobs.c.claim_token == lease.token,
        jobs.c.state == JobState.RUNNING.value,
    )


def log_event(conn: Connection, job_id: str, message: str, level: str = "INFO") -> None:
    """One line of a job's log."""
    conn.execute(
        insert(job_events).values(job_id=job_id, at=utcnow(), level=level, message=message)
    )


def log_events(conn: Connection, job_id: str, messages: Sequence[str], level: str = "INFO") -> None:
    """Lines of a job's log in one statement (a program's log is a dozen lines; one INSERT
    each was a third of a millisecond apiece on SQLite). Read back in this order (by id)."""
    if messages:
        at = utcnow()
        conn.execute(
            insert(job_events),
            [{"job_id": job_id, "at": at, "level": level, "message": m} for m in messages],
        )


def transition(
    conn: Connection,
    job_id: str,
    to: JobState | Outcome,
    *,
    owner: Owner | None = None,
    held_by: Lease | None = None,
    message: str | None = None,
    when: Sequence[ColumnElement[bool]] = (),
    **values: Any,
) -> bool:
    """Move a job to a state (or to an outcome's state, with its reason, code and solution) if
    its current state allows it; False when it does not.

    `held_by` additionally requires the job to still be held under that lease (worker and
    fencing token), so a worker that lost its run (cancelled, requeued, taken over) cannot
    overwrite what happened since; `when` adds conditions of the caller's (e.g. a heartbeat
    that is still stale).
    """
    level = "INFO"
    lines: tuple[str, ...] = ()
    if isinstance(to, Outcome):
        lines = to.lines
        rendered, level, reason_values = to.render()
        message = message or rendered
        values = {**reason_values, **values}
        to = to.state
    elif to is JobState.FAILED:
        level = "ERROR"
    conditions = [jobs.c.id == job_id, jobs.c.state.in_([s.value for s in ALLOWED_FROM[to]])]
    if owner is not None:
        conditions.extend(owned_by(owner))
    if held_by is not None:
        conditions.extend(held(held_by))
    conditions.extend(when)
    if to in TERMINAL:
        values.setdefault("finished_at", utcnow())
    changed = conn.execute(update(jobs).where(*conditions).values(state=to.value, **values))
    if not changed.rowcount:
        return False
    log_events(conn, job_id, lines)  # what the program logged before the outcome
    log_event(conn, job_id, message or f"Job {to.value}", level)
    _changed(conn)[job_id] = to.value
    return True


def claim_next(
    conn: Connection, worker_id: str, held_instances: Collection[str] = ()
) -> str | None:
    """Atomically move the next Queued job to Running for `worker_id`; its id, or None.

    Jobs of dedicated sessions go first and one at a time per session (in order); then
    everything else, oldest first. Batch jobs run in parallel like any others. Jobs of
    `held_instances` (out of usage time) stay Queued.
    """
    busy = jobs.alias("busy")
    session_busy = (
        select(busy.c.id)
        .where(busy.c.session_id == jobs.c.session_id, busy.c.state == JobState.RUNNING.value)
        .exists()
    )
    # Outer join: jobs without a session have a NULL mode, which must compare false.
    dedicated = func.coalesce(sessions.c.mode, "") == "dedicated"
    next_id = (
        select(jobs.c.id)
        .select_from(jobs.outerjoin(sessions, sessions.c.id == jobs.c.session_id))
        .where(
            jobs.c.state == JobState.QUEUED.value,
            jobs.c.held == false(),
            or_(jobs.c.not_before.is_(None), jobs.c.not_before <= utcnow()),
            ~and_(dedicated, session_busy),
            *([jobs.c.instance.not_in(list(held_instances))] if held_instances else []),
        )
        .order_by(case((dedicated, 0), else_=1), jobs.c.created_at, jobs.c.id)
        .limit(1)
        .with_for_update(of=jobs, skip_locked=True)
        .scalar_subquery()
    )
    now = utcnow()
    row = conn.execute(
        update(jobs)
        .where(jobs.c.id == next_id, jobs.c.state == JobState.QUEUED.value)
        .values(
            state=JobState.RUNNING.value,
            worker_id=worker_id,
            running_at=now,
            heartbeat_at=now,
            attempts=jobs.c.attempts + 1,
            claim_token=jobs.c.claim_token + 1,
        )
        .returning(jobs.c.id)
    ).one_or_none()
    if row is None:
        return None
    job_id = str(row[0])
    log_event(conn, job_id, f"Job running on emulator worker {worker_id}")
    _changed(conn)[job_id] = JobState.RUNNING.value
    return job_id


def _changed(conn: Connection) -> dict[str, str]:
    """The jobs this transaction changed so far, with their new states."""
    changed: dict[str, str] = conn.info.setdefault(_CHANGED, {})
    return changed


class Transactions:
    """Opens write transactions and announces the jobs that changed: to other processes
    through the store (`signals.publish`, delivered at commit), and after the commit to this
    process's `on_change` (job id, new state)."""

    def __init__(self, engine: Engine, on_change: Change | None = None) -> None:
        self.engine = engine
        self.on_change = on_change

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            # `info` outlives the checkout (it belongs to the pooled connection): start clean.
            conn.info.pop(_CHANGED, None)
            try:
                yield conn
            except BaseException:
                conn.info.pop(_CHANGED, None)
                raise
            changed = conn.info.pop(_CHANGED, {})
            publish(conn, changed)
        if self.on_change is not None:
            for job_id in sorted(changed):
                self.on_change(job_id, changed[job_id])


def announce(conn: Connection, job_id: str, change: str) -> None:
    """Have `Transactions` announce a change of `job_id` that is not a move: "queued" (just
    stored, or released), "tags", "deleted"; job id `cache.ALL` with "reset" for every job."""
    _changed(conn)[job_id] = change
