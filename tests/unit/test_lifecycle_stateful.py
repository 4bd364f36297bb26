"""Hypothesis stateful test: no sequence of calls leaves a job or a session in an impossible state.

Drives the real store (SQLite file), the real session rules and the real Runtime admission
(the unit of work `POST /jobs` uses) with random interleavings of client calls, worker
actions, direct calls of the transition function, a crash-and-restart and the passing of time.
The clock is the test's: sessions expire by time, and a test must not wait for that.

SQLite triggers watch the store: one records every change of a job's state, another counts
every write. So the test proves that every state change went through `transition()` or the
claim (their successful calls are counted) and that reads write nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)
from sqlalchemy import select

from emulator.domain.admission import InstanceLimits
from emulator.domain.errors import (
    JobNotCancellable,
    JobNotFound,
    JobNotTerminal,
    PendingJobsLimit,
    SessionBackendMismatch,
    SessionClosed,
)
from emulator.domain.jobs import (
    ALLOWED_FROM,
    TERMINAL,
    JobFilter,
    JobState,
    Lease,
    NewJob,
    Owner,
)
from emulator.domain.sessions import SessionMode, SessionPolicy, SessionState
from emulator.services import jobs as services_module
from emulator.services.jobs import store_runtime_job
from emulator.store import jobs as repository_module
from emulator.store import sessions as sessions_module
from emulator.store import transitions as transitions_module
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository
from emulator.store.sessions import SessionStore
from emulator.store.tables import jobs, sessions

OWNER = Owner("crn:stateful")
BACKENDS = ("ibm_fez", "ibm_brisbane")
POLICY = SessionPolicy(default_max_ttl=600, interactive_ttl=60, idle_close=1800)
LIMITS = InstanceLimits(max_pending=8)
WORKERS = ("w0", "w1")


class Clock:
    """Naive UTC that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 0, 0)

    def __call__(self) -> datetime:
        return self.now


class Lifecycle(RuleBasedStateMachine):
    """Client calls, workers and time, in any order; the invariants hold after every step."""

    session_ids = Bundle("sessions")
    job_ids = Bundle("jobs")
    database_url: str | None = None  # None: a new SQLite file per example
    watchers: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self._dir = TemporaryDirectory()
        self.clock = Clock()
        self._patch = pytest.MonkeyPatch()
        for module in (repository_module, sessions_module, transitions_module, services_module):
            self._patch.setattr(module, "utcnow", self.clock)
        self.calls = 0  # successful calls of transition() and of the claim
        counted_transition = self._counted(transitions_module.transition)
        counted_claim = self._counted(transitions_module.claim_next)
        for module in (repository_module, sessions_module, transitions_module):
            if hasattr(module, "transition"):
                self._patch.setattr(module, "transition", counted_transition)
        self._patch.setattr(repository_module, "claim_next", counted_claim)
        url = self.database_url or f"sqlite:///{Path(self._dir.name) / 'store.db'}"
        engine = create_store_engine(url)
        with engine.begin() as conn:
            if self.database_url is not None:  # one database for every example: empty it
                conn.exec_driver_sql(
                    "TRUNCATE jobs, sessions, job_events, job_tags, controls, state_changes"
                )
                conn.exec_driver_sql("UPDATE writes SET n = 0")
            else:
                for statement in WATCHERS:
                    conn.exec_driver_sql(statement)
        self.repo = Repository(engine)
        self.store = SessionStore(self.repo, POLICY)
        self.counter = 0
        self.seen: dict[str, JobState] = {}  # last observed state of every job
        self.closed_at: dict[str, datetime] = {}  # sessions observed closed
        self.deleted: set[str] = set()
        self.leases: list[tuple[str, Lease]] = []  # every lease a claim handed out

    def _counted(self, function: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            if result:  # True from transition(), a job id from the claim
                self.calls += 1
            return result

        return counted

    def _watched(self) -> tuple[int, int]:
        """(state changes recorded by the trigger, writes counted by the triggers)."""
        with self.repo.engine.connect() as conn:
            changes = conn.exec_driver_sql("SELECT count(*) FROM state_changes").scalar_one()
            writes = conn.exec_driver_sql("SELECT n FROM writes").scalar_one()
        return int(changes), int(writes)

    def teardown(self) -> None:
        self._patch.undo()
        self.repo.engine.dispose()
        self._dir.cleanup()

    def _new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- client calls ----------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.clock.now += timedelta(seconds=1)

    @rule(
        target=session_ids,
        mode=st.sampled_from(list(SessionMode)),
        backend=st.sampled_from(BACKENDS),
        max_ttl=st.sampled_from([30, 600]),
    )
    def create_session(self, mode: SessionMode, backend: str, max_ttl: int) -> str:
        session = self.store.create(self._new_id("s"), OWNER.instance, backend, mode, max_ttl)
        assert session.state is SessionState.OPEN and session.accepting_jobs
        return session.id

    @rule(
        target=job_ids,
        session_id=st.none() | session_ids,
        backend=st.sampled_from(BACKENDS),
    )
    def submit(self, session_id: str | None, backend: str) -> Any:
        job_id = self._new_id("j")
        try:
            job = store_runtime_job(
                self.repo,
                NewJob(
                    id=job_id,
                    instance=OWNER.instance,
                    program_id="sampler",
                    backend=backend,
                    params="{}",
                    session_id=session_id,
                ),
                LIMITS,
                self.store,
            )
        except SessionClosed:
            assert session_id is not None
            session = self.store.get(OWNER.instance, session_id)
            assert session.closed or not session.accepting_jobs
            self._refused(job_id)
            return multiple()
        except SessionBackendMismatch:
            assert session_id is not None
            assert self.store.get(OWNER.instance, session_id).backend != backend
            self._refused(job_id)
            return multiple()
        except PendingJobsLimit:
            assert self._pending_count() >= LIMITS.max_pending
            self._refused(job_id)
            return multiple()
        assert job.state is JobState.QUEUED
        if session_id is not None:
            assert session_id not in self.closed_at, "a closed session accepted a job"
        self.seen[job_id] = JobState.QUEUED
        return job_id

    def _refused(self, job_id: str) -> None:
        with pytest.raises(JobNotFound):
            self.repo.get_job(OWNER, job_id)

    @rule(job_id=job_ids)
    def cancel_job(self, job_id: str) -> None:
        if job_id in self.deleted:
            with pytest.raises(JobNotFound):
                self.repo.cancel_job(OWNER, job_id)
            return
        before = self.repo.get_job(OWNER, job_id).state
        if before in TERMINAL:
            with pytest.raises(JobNotCancellable):
                self.repo.cancel_job(OWNER, job_id)
        else:
            assert self.repo.cancel_job(OWNER, job_id).state is JobState.CANCELLED

    @rule(job_id=consumes(job_ids))
    def delete_job(self, job_id: str) -> None:
        if job_id in self.deleted:
            return
        state = self.repo.get_job(OWNER, job_id).state
        if state in TERMINAL:
            self.repo.delete_job(OWNER, job_id)
            self.deleted.add(job_id)
            self.seen.pop(job_id, None)
        else:
            with pytest.raises(JobNotTerminal):
                self.repo.delete_job(OWNER, job_id)

    @rule(session_id=session_ids)
    def stop_accepting(self, session_id: str) -> None:
        session = self.store.set_accepting(OWNER.instance, session_id, False)
        assert not session.accepting_jobs

    @rule(session_id=session_ids)
    def cancel_session(self, session_id: str) -> None:
        session = self.store.cancel(OWNER.instance, session_id)
        assert session.closed and session.state is SessionState.CLOSED

    @rule(session_id=session_ids)
    def read_session(self, session_id: str) -> None:
        before = self._watched()
        session = self.store.get(OWNER.instance, session_id)
        if session.closed:
            assert session.state is SessionState.CLOSED and not session.accepting_jobs
        self.store.all()
        assert self._watched() == before, "a session read wrote to the store"

    @rule(job_id=job_ids)
    def read_job(self, job_id: str) -> None:
        before = self._watched()
        try:
            self.repo.get_job(OWNER, job_id, with_params=True)
            self.repo.get_events(OWNER, job_id)
            self.repo.get_result(OWNER, job_id)
        except JobNotFound:
            assert job_id in self.deleted or job_id not in self.seen
        self.repo.list_jobs(OWNER, JobFilter(limit=50))
        assert self._watched() == before, "a job read wrote to the store"

    @rule(job_id=job_ids, to=st.sampled_from(sorted(TERMINAL)))
    def transition_directly(self, job_id: str, to: JobState) -> None:
        """The transition function itself, in a transaction of the test's: it moves a job
        only along ALLOWED_FROM."""
        row = next((r for r in self._rows() if r["id"] == job_id), None)
        with self.repo.tx.begin() as conn:
            moved = repository_module.transition(conn, job_id, to, reason="directly")
        assert moved == (row is not None and JobState(row["state"]) in ALLOWED_FROM[to])

    # -- workers, the server and time -----------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS))
    def claim(self, worker: str) -> None:
        running = self._running_on(worker)
        if running:
            return  # a slot runs one job at a time
        job = self.repo.claim_next(worker)
        if job is not None:
            assert job.state is JobState.RUNNING and job.worker_id == worker
            assert job.lease is not None
            assert (job.id, job.lease) not in self.leases, "a fencing token was reused"
            self.leases.append((job.id, job.lease))

    @rule(data=st.data())
    def a_worker_writes_with_an_old_lease(self, data: st.DataObject) -> None:
        """A worker that lost a run (requeued, taken over, cancelled) writes its result: only
        the current lease of a Running job may (the fencing check)."""
        if not self.leases:
            return
        job_id, lease = data.draw(st.sampled_from(self.leases))
        row = next((r for r in self._rows() if r["id"] == job_id), None)
        current = (
            row is not None
            and row["state"] == JobState.RUNNING.value
            and (row["worker_id"], row["claim_token"]) == (lease.worker_id, lease.token)
        )
        if current:
            return  # the finish rule covers the current holder
        before = self._watched()
        assert not self.repo.heartbeat(lease, job_id)
        assert self.repo.complete_job(job_id, lease, "{}", [], 1.0) is None
        assert self.repo.transition(job_id, JobState.FAILED, held_by=lease) is None
        assert self._watched() == before  # nothing was written

    @rule(worker=st.sampled_from(WORKERS), succeed=st.booleans())
    def finish(self, worker: str, succeed: bool) -> None:
        for job_id, lease in self._running_on(worker):
            self.clock.now += timedelta(seconds=2)
            if succeed:
                done = self.repo.complete_job(job_id, lease, "{}", [], 2.0)
                assert done is not None and done.state is JobState.COMPLETED
            else:
                failed = self.repo.transition(
                    job_id, JobState.FAILED, held_by=lease, reason="simulated failure"
                )
                assert failed is not None

    @rule()
    def restart(self) -> None:
        """The server died: running jobs are requeued (or failed past their attempts)."""
        for job in self.repo.recover_interrupted(max_attempts=2, stale_after=timedelta(0)):
            assert job.state in (JobState.QUEUED, JobState.FAILED)

    @rule(seconds=st.sampled_from([45, 700, 2000]))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += timedelta(seconds=seconds)

    @rule()
    def settle(self) -> None:
        self.store.settle_all()

    # -- helpers ---------------------------------------------------------------------------

    def _rows(self) -> list[Any]:
        with self.repo.engine.connect() as conn:
            return list(conn.execute(select(jobs)).mappings())

    def _running_on(self, worker: str) -> list[tuple[str, Lease]]:
        return [
            (r["id"], Lease(worker, r["claim_token"]))
            for r in self._rows()
            if r["state"] == JobState.RUNNING.value and r["worker_id"] == worker
        ]

    def _pending_count(self) -> int:
        return sum(
            r["state"] in (JobState.QUEUED.value, JobState.RUNNING.value) for r in self._rows()
        )

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def jobs_move_only_along_the_state_machine(self) -> None:
        for row in self._rows():
            state = JobState(row["state"])
            before = self.seen.get(row["id"])
            assert before is not None, f"job {row['id']} appeared without a submission"
            if before in TERMINAL:
                assert state is before, f"terminal job {row['id']} changed: {before} → {state}"
            elif state is not before:
                # Several steps may pass between observations only through the workers.
                reachable = {state} <= _reachable_from(before)
                assert reachable, f"job {row['id']}: {before} → {state} is impossible"
            self.seen[row["id"]] = state
            if state is JobState.RUNNING:
                assert row["running_at"] is not None and row["worker_id"] is not None
            if state in TERMINAL:
                assert row["finished_at"] is not None
            else:
                assert row["finished_at"] is None

    @invariant()
    def sessions_are_consistent_with_their_jobs(self) -> None:
        with self.repo.engine.connect() as conn:
            rows = list(conn.execute(select(sessions)).mappings())
        job_rows = self._rows()
        for s in rows:
            mine = [j for j in job_rows if j["session_id"] == s["id"]]
            assert all(j["backend"] == s["backend"] for j in mine), "job on another backend"
            running = [j for j in mine if j["state"] == JobState.RUNNING.value]
            if s["mode"] == SessionMode.DEDICATED.value:
                assert len(running) <= 1, f"dedicated session {s['id']} runs {len(running)}"
            if s["closed_at"] is not None:
                queued = [j["id"] for j in mine if j["state"] == JobState.QUEUED.value]
                assert not queued, f"closed session {s['id']} still has queued jobs {queued}"
                assert not s["accepting_jobs"]
                if s["id"] in self.closed_at:
                    assert s["closed_at"] == self.closed_at[s["id"]], "a session closed twice"
                self.closed_at[s["id"]] = s["closed_at"]
            else:
                assert s["id"] not in self.closed_at, f"closed session {s['id']} reopened"

    @invariant()
    def every_state_change_went_through_the_transition_function(self) -> None:
        changes, _ = self._watched()
        assert changes == self.calls, f"{changes} state changes, {self.calls} transitions"

    @invariant()
    def pending_jobs_never_exceed_the_limit(self) -> None:
        assert self._pending_count() <= LIMITS.max_pending


WATCHERS = (
    "CREATE TABLE state_changes (job_id TEXT, old TEXT, new TEXT)",
    "CREATE TRIGGER job_state_changed AFTER UPDATE OF state ON jobs "
    "WHEN OLD.state IS NOT NEW.state BEGIN "
    "INSERT INTO state_changes VALUES (NEW.id, OLD.state, NEW.state); END",
    "CREATE TABLE writes (n INTEGER NOT NULL)",
    "INSERT INTO writes VALUES (0)",
    *(
        f"CREATE TRIGGER counted_{table}_{action} AFTER {action} ON {table} "
        "BEGIN UPDATE writes SET n = n + 1; END"
        for table in ("jobs", "sessions", "job_events", "job_tags")
        for action in ("INSERT", "UPDATE", "DELETE")
    ),
)


def _reachable_from(state: JobState) -> set[JobState]:
    """Every state reachable from `state` through allowed transitions (itself included)."""
    out, frontier = {state}, [state]
    while frontier:
        current = frontier.pop()
        for target, sources in ALLOWED_FROM.items():
            if current in sources and target not in out:
                out.add(target)
                frontier.append(target)
    return out


PG_WATCHERS = (
    "CREATE TABLE state_changes (job_id TEXT, old TEXT, new TEXT)",
    "CREATE FUNCTION record_state_change() RETURNS trigger AS $$ BEGIN "
    "IF OLD.state IS DISTINCT FROM NEW.state THEN "
    "INSERT INTO state_changes VALUES (NEW.id, OLD.state, NEW.state); END IF; "
    "RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER job_state_changed AFTER UPDATE OF state ON jobs "
    "FOR EACH ROW EXECUTE FUNCTION record_state_change()",
    "CREATE TABLE writes (n INTEGER NOT NULL)",
    "INSERT INTO writes VALUES (0)",
    "CREATE FUNCTION count_write() RETURNS trigger AS $$ BEGIN "
    "UPDATE writes SET n = n + 1; RETURN NULL; END $$ LANGUAGE plpgsql",
    *(
        f"CREATE TRIGGER counted_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION count_write()"
        for table in ("jobs", "sessions", "job_events", "job_tags")
    ),
)

Lifecycle.TestCase.settings = settings(
    # 150 × 40 steps: the suite's 15-minute budget (300 took 72 s of it, 200 about 39 s on a
    # loaded 2-core machine; the issue-15 programs' tests took the difference).
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_lifecycle = Lifecycle.TestCase
