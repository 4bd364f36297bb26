"""The jobs repository: storing, reading, deleting and annotating jobs, the reads admission
decisions need, and the worker's side (claim, heartbeats, recovery) over `transitions`.

Each public method without a `conn` argument is one transaction; those with one join the
caller's. Every change of a job's state goes through `transitions.transition` (or the claim).
Usage sums live in `usage`, sessions in `sessions`, control-plane rows in `controls`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from emulator.domain.admission import InstanceActivity, InstanceLimits, LaneLimit, usage_period
from emulator.domain.errors import (
    InvalidRequest,
    JobNotCancellable,
    JobNotFound,
    JobNotTerminal,
    ResultsAlreadyRead,
)
from emulator.domain.jobs import (
    PENDING,
    TERMINAL,
    Api,
    JobEvent,
    JobFilter,
    JobSnapshot,
    JobState,
    Lease,
    NewJob,
    Owner,
    utcnow,
)
from emulator.domain.outcomes import End, Outcome, outcome
from emulator.store.cache import ALL, Coherence, SnapshotCache
from emulator.store.db import reading
from emulator.store.instances import InstanceSettings
from emulator.store.signals import Change
from emulator.store.tables import job_events, job_tags, jobs, sessions
from emulator.store.transitions import (
    Transactions,
    announce,
    claim_next,
    held,
    log_event,
    log_events,
    owned_by,
    transition,
)
from emulator.store.usage import UsageLedger, consumed_seconds

# What a job given back to the queue forgets of its run.
_REQUEUED = {"worker_id": None, "running_at": None, "heartbeat_at": None}
# Columns of a snapshot without the (possibly large) params and result texts.
_SUMMARY = [c for c in jobs.c if c.name not in ("params", "result")]
# Built once: constructing a 35-column SELECT per read cost more than running it, and a
# statement object reused with bind parameters also keeps its SQLAlchemy cache key (computed
# once, not per execution).
_SUMMARY_QUERY = select(*_SUMMARY)
_WITH_PARAMS_QUERY = select(*_SUMMARY, jobs.c.params)
# `owned_by` with bind parameters (values: `_owner_values`).
_OWNED = (jobs.c.instance == bindparam("instance"), jobs.c.api == bindparam("api"))
_BY_ID = _SUMMARY_QUERY.where(jobs.c.id == bindparam("job_id"))
_BY_ID_OWNED = _BY_ID.where(*_OWNED)
_BY_IDS = _SUMMARY_QUERY.where(jobs.c.id.in_(bindparam("ids", expanding=True)))
_TAGS_OF = select(job_tags.c.job_id, job_tags.c.tag).where(
    job_tags.c.job_id.in_(bindparam("ids", expanding=True))
)
QUEUED_ON = (
    select(func.count())
    .select_from(jobs)
    .where(jobs.c.backend == bindparam("backend"), jobs.c.state == JobState.QUEUED.value)
)
_BY_STATE = select(jobs.c.state, func.count()).group_by(jobs.c.state)
_LIST_STATEMENTS: dict[tuple[Any, ...], tuple[Select[Any], Select[Any]]] = {}
"""(count, page) statements of `GET /jobs` per shape of filter (which filters are given, the
order, with params or not): a few hundred shapes at most, each built once."""


def _owner_values(owner: Owner) -> dict[str, str]:
    return {"instance": owner.instance, "api": owner.api.value}


def _list_statements(flt: JobFilter, with_params: bool) -> tuple[Select[Any], Select[Any]]:
    shape = (
        flt.pending,
        bool(flt.program_id),
        bool(flt.backend),
        bool(flt.session_id),
        flt.created_after is not None,
        flt.created_before is not None,
        bool(flt.tags),
        flt.descending,
        with_params,
        bool(flt.hidden_backends),
    )
    statements = _LIST_STATEMENTS.get(shape)
    if statements is None:
        statements = _LIST_STATEMENTS[shape] = _build_list_statements(flt, with_params)
    return statements


def _build_list_statements(flt: JobFilter, with_params: bool) -> tuple[Select[Any], Select[Any]]:
    conditions: list[Any] = list(_OWNED)
    if flt.pending is True:
        conditions.append(jobs.c.state.in_([s.value for s in PENDING]))
    elif flt.pending is False:
        conditions.append(jobs.c.state.in_([s.value for s in TERMINAL]))
    if flt.program_id:
        conditions.append(jobs.c.program_id == bindparam("program_id"))
    if flt.backend:
        conditions.append(jobs.c.backend == bindparam("backend"))
    if flt.session_id:
        conditions.append(jobs.c.session_id == bindparam("session_id"))
    if flt.hidden_backends:
        conditions.append(jobs.c.backend.not_in(bindparam("hidden_backends", expanding=True)))
    if flt.created_after:
        conditions.append(jobs.c.created_at >= bindparam("created_after"))
    if flt.created_before:
        conditions.append(jobs.c.created_at <= bindparam("created_before"))
    if flt.tags:
        # A job matches when it carries every requested tag.
        tagged = (
            select(job_tags.c.job_id)
            .where(job_tags.c.tag.in_(bindparam("tags", expanding=True)))
            .group_by(job_tags.c.job_id)
            .having(func.count(distinct(job_tags.c.tag)) == bindparam("tag_count"))
        )
        conditions.append(jobs.c.id.in_(tagged))
    where = and_(*conditions)
    order = (
        [jobs.c.created_at.desc(), jobs.c.id.desc()]
        if flt.descending
        else [jobs.c.created_at.asc(), jobs.c.id.asc()]
    )
    count = select(func.count()).select_from(jobs).where(where)
    # Without params a page is its ids and the total (one statement, no transaction): final
    # jobs come from the snapshot cache.
    page = (
        (
            _WITH_PARAMS_QUERY
            if with_params
            else select(jobs.c.id, func.count().over().label("total"))
        )
        .where(where)
        .order_by(*order)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return count, page


def _snapshot(row: Row[Any], tags: Sequence[str] = (), params: str | None = None) -> JobSnapshot:
    m = row._mapping
    return JobSnapshot(
        id=m["id"],
        instance=m["instance"],
        program_id=m["program_id"],
        backend=m["backend"],
        state=JobState(m["state"]),
        created_at=m["created_at"],
        params=params,
        reason=m["reason"],
        reason_code=m["reason_code"],
        reason_solution=m["reason_solution"],
        session_id=m["session_id"],
        tags=tuple(sorted(tags)),
        log_level=m["log_level"],
        cost=m["cost"],
        private=bool(m["private"]),
        runtime=m["runtime"],
        calibration_id=m["calibration_id"],
        caller=m["caller"],
        running_at=m["running_at"],
        finished_at=m["finished_at"],
        worker_id=m["worker_id"],
        attempts=m["attempts"],
        claim_token=m["claim_token"],
        quantum_seconds=m["quantum_seconds"],
        api=Api(m["api"]),
        storage=m["storage"],
        time_limit=m["time_limit"],
        held=bool(m["held"]),
        release_after_polls=m["release_after_polls"],
        min_run_seconds=m["min_run_seconds"],
        outcome=m["outcome"],
        seed=m["seed"],
    )


class Repository:
    """Job persistence over one SQLAlchemy engine."""

    def __init__(
        self,
        engine: Engine,
        on_transition: Change | None = None,
        cache: SnapshotCache | None = None,
    ) -> None:
        self.engine = engine
        # Final jobs' snapshots; off unless the node says how far it can trust them.
        self.cache = cache if cache is not None else SnapshotCache(Coherence.OFF)
        self._on_transition = on_transition
        # Write transactions; this process's committed changes drop cached snapshots first,
        # then reach `on_transition` (held polls, local workers).
        self.tx = Transactions(engine, self._changed)
        self.usage = UsageLedger(engine)
        self.instances = InstanceSettings(engine)

    def _changed(self, job_id: str, change: str) -> None:
        self.cache.drop(job_id)
        if self._on_transition is not None:
            self._on_transition(job_id, change)

    # -- helpers ---------------------------------------------------------------------------

    def _read(self) -> Connection:
        return reading(self.engine)

    @staticmethod
    def _tags_of(conn: Connection, job_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(job_ids)
        out: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            for job_id, tag in conn.execute(_TAGS_OF, {"ids": ids}):
                out[job_id].append(tag)
        return out

    @classmethod
    def _load(cls, conn: Connection, job_id: str, owner: Owner | None) -> JobSnapshot | None:
        if owner is None:
            row = conn.execute(_BY_ID, {"job_id": job_id}).one_or_none()
        else:
            row = conn.execute(
                _BY_ID_OWNED,
                {"job_id": job_id, **_owner_values(owner)},
            ).one_or_none()
        if row is None:
            return None
        return _snapshot(row, cls._tags_of(conn, [job_id])[job_id])

    # -- create / read -----------------------------------------------------------------------

    def create_job(self, job: NewJob) -> JobSnapshot:
        """Store a new Queued job in a transaction of its own (no admission checks)."""
        with self.tx.begin() as conn:
            return self.insert_job(conn, job)

    def insert_job(
        self, conn: Connection, job: NewJob, extra: Mapping[str, Any] | None = None
    ) -> JobSnapshot:
        """Insert a Queued job with its tags and a first log line, in the caller's transaction
        (a service's unit of work: it has read and decided before; `extra` are the control
        plane's column values)."""
        try:
            conn.execute(
                insert(jobs).values(
                    id=job.id,
                    instance=job.instance,
                    program_id=job.program_id,
                    backend=job.backend,
                    state=JobState.QUEUED.value,
                    params=job.params,
                    session_id=job.session_id,
                    log_level=job.log_level,
                    cost=job.cost,
                    private=job.private,
                    runtime=job.runtime,
                    calibration_id=job.calibration_id,
                    caller=job.caller,
                    api=job.api.value,
                    storage=job.storage,
                    time_limit=job.time_limit,
                    created_at=utcnow(),
                    attempts=0,
                    **(extra or {}),
                )
            )
        except IntegrityError as exc:
            raise InvalidRequest("id", f"a job with id {job.id} already exists") from exc
        if job.tags:
            conn.execute(insert(job_tags), [{"job_id": job.id, "tag": t} for t in job.tags])
        log_event(conn, job.id, f"Job queued: program {job.program_id} on {job.backend}")
        announce(conn, job.id, JobState.QUEUED.value)
        snapshot = self._load(conn, job.id, None)
        assert snapshot is not None
        return snapshot

    # -- what admission decisions read (in the submission's transaction) -----------------------

    @staticmethod
    def lock(conn: Connection, key: str) -> None:
        """Serialise the transactions that take the same `key` until they end.

        SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs an advisory lock
        (admission reads counts, then inserts: two API nodes must not both pass a limit).
        """
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    @staticmethod
    def job_exists(conn: Connection, job_id: str) -> bool:
        return conn.execute(select(jobs.c.id).where(jobs.c.id == job_id)).one_or_none() is not None

    @staticmethod
    def lanes_held(conn: Connection, backend: str, api: Api, lanes: LaneLimit) -> int:
        """The backend's jobs (of one API) that hold an execution lane under `lanes.rule`."""
        held = (
            select(func.count())
            .select_from(jobs)
            .where(jobs.c.backend == backend, jobs.c.api == api.value)
        )
        if lanes.rule.states is not None:
            held = held.where(jobs.c.state.in_([s.value for s in lanes.rule.states]))
        return int(conn.execute(held).scalar_one())

    @staticmethod
    def instance_activity(
        conn: Connection, owner: Owner, limits: InstanceLimits, now: datetime
    ) -> InstanceActivity:
        """Only what `limits` need: pending jobs, last minute's submissions, period usage."""
        mine = (jobs.c.instance == owner.instance, jobs.c.api == owner.api.value)
        pending, consumed, recent = 0, 0.0, ()
        if limits.max_pending > 0:
            pending = conn.execute(
                select(func.count())
                .select_from(jobs)
                .where(*mine, jobs.c.state.in_([s.value for s in PENDING]))
            ).scalar_one()
        if limits.usage.refuses(owner.instance):
            consumed = consumed_seconds(conn, owner.instance, usage_period(now)[0])
        if limits.per_minute > 0:
            recent = tuple(
                conn.execute(
                    select(jobs.c.created_at)
                    .where(*mine, jobs.c.created_at > now - timedelta(minutes=1))
                    .order_by(jobs.c.created_at)
                ).scalars()
            )
        return InstanceActivity(pending=int(pending), recent=recent, consumed=consumed)

    def set_params(self, job_id: str, lease: Lease, params: str) -> bool:
        """Keep the input a Direct Access worker fetched, for inspection; False when this run
        of the job is no longer the worker's."""
        with self.tx.begin() as conn:
            changed = conn.execute(
                update(jobs).where(jobs.c.id == job_id, *held(lease)).values(params=params)
            )
        return changed.rowcount > 0

    def get_job(self, owner: Owner, job_id: str, with_params: bool = False) -> JobSnapshot:
        """One job of an owner."""
        return self._get(owner, job_id, with_params)

    def cached_job(self, owner: Owner, job_id: str) -> JobSnapshot | None:
        """The job from memory, without params, if it is final and cached: no I/O, so fit for
        the event loop. None: read it from the store (`get_job`)."""
        snapshot = self.cache.get(job_id)
        if snapshot is None or snapshot.owner != owner:
            return None
        return snapshot

    def _get(self, owner: Owner | None, job_id: str, with_params: bool) -> JobSnapshot:
        if not with_params:
            cached = self.cache.get(job_id)
            if cached is not None and (owner is None or cached.owner == owner):
                return cached
        generation = self.cache.generation(job_id)
        with self._read() as conn, conn.begin():
            snapshot = self._load(conn, job_id, owner)
            if snapshot is None:
                raise JobNotFound(job_id)
            if with_params:
                params = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id)).scalar()
                snapshot = _with(snapshot, params=params)
        self.cache.put(snapshot, generation)
        return snapshot

    def list_jobs(
        self, owner: Owner, flt: JobFilter, with_params: bool = False
    ) -> tuple[list[JobSnapshot], int]:
        """A page of an owner's jobs (with their params, in the same query, if asked) and the
        exact count of all that match."""
        count_query, page_query = _list_statements(flt, with_params)
        values: dict[str, Any] = {
            **_owner_values(owner),
            "program_id": flt.program_id,
            "backend": flt.backend,
            "session_id": flt.session_id,
            "created_after": flt.created_after,
            "created_before": flt.created_before,
            "limit": flt.limit,
            "offset": flt.offset,
        }
        if flt.tags:
            wanted = sorted(set(flt.tags))
            values["tags"], values["tag_count"] = wanted, len(wanted)
        if flt.hidden_backends:
            values["hidden_backends"] = list(flt.hidden_backends)
        # Values a shape's statements do not name are ignored by SQLAlchemy.
        if with_params:
            with self._read() as conn, conn.begin():
                count = conn.execute(count_query, values).scalar_one()
                rows = conn.execute(page_query, values).all()
                tags = self._tags_of(conn, [r.id for r in rows])
            return [_snapshot(r, tags[r.id], r.params) for r in rows], int(count)
        mark = self.cache.marks()  # before the reads, as for one job (`_get`)
        # One statement for the ids and the total: each statement a reader thread runs hands
        # the GIL back and waits for it again, which under load costs more than the SQL.
        with reading(self.engine, single=True) as conn:
            rows = conn.execute(page_query, values).all()
        ids = [r.id for r in rows]
        if rows:
            count = rows[0].total
        elif flt.offset == 0:
            count = 0
        else:  # past the end: no row carries the total
            with reading(self.engine, single=True) as conn:
                count = conn.execute(count_query, values).scalar_one()
        page = {i: s for i in ids if (s := self.cache.get(i)) is not None}
        missing = [i for i in ids if i not in page]
        read: list[JobSnapshot] = []
        if missing:
            # A job deleted since the first read is left out of the page, as if it had been
            # deleted just before it (the count, read first, still includes it).
            with self._read() as conn, conn.begin():
                tags = self._tags_of(conn, missing)
                read = [_snapshot(r, tags[r.id]) for r in conn.execute(_BY_IDS, {"ids": missing})]
            page.update((s.id, s) for s in read)
        for snapshot in read:
            self.cache.put(snapshot, mark(snapshot.id))
        return [page[i] for i in ids if i in page], int(count)

    def get_result(self, owner: Owner, job_id: str) -> tuple[JobSnapshot, str | None]:
        """The job and its stored result text (None until it completes)."""
        with self._read() as conn, conn.begin():
            snapshot = self._load(conn, job_id, owner)
            if snapshot is None:
                raise JobNotFound(job_id)
            result = conn.execute(select(jobs.c.result).where(jobs.c.id == job_id)).scalar()
        return snapshot, result

    def take_result(self, owner: Owner, job_id: str) -> tuple[JobSnapshot, str | None]:
        """A private job's result, deleted as it is read (IBM: readable once); None until it
        completes; ResultsAlreadyRead once taken. One guarded UPDATE, so of two readers at
        once exactly one gets it."""
        with self.tx.begin() as conn:
            snapshot = self._load(conn, job_id, owner)
            if snapshot is None:
                raise JobNotFound(job_id)
            if snapshot.state is not JobState.COMPLETED:
                result = conn.execute(select(jobs.c.result).where(jobs.c.id == job_id)).scalar()
                return snapshot, result
            # Read under a row lock (PostgreSQL; SQLite's write transaction serialises), then
            # clear it guarded: a second reader finds it gone either way.
            taken = conn.execute(
                select(jobs.c.result).where(jobs.c.id == job_id).with_for_update()
            ).scalar()
            cleared = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.result.is_not(None))
                .values(result=None)
            )
            if taken is None or not cleared.rowcount:
                raise ResultsAlreadyRead(job_id)
            return snapshot, taken

    def get_events(self, owner: Owner, job_id: str) -> tuple[JobSnapshot, list[JobEvent]]:
        with self._read() as conn, conn.begin():
            snapshot = self._load(conn, job_id, owner)
            if snapshot is None:
                raise JobNotFound(job_id)
            rows = conn.execute(
                select(job_events.c.at, job_events.c.level, job_events.c.message)
                .where(job_events.c.job_id == job_id)
                .order_by(job_events.c.id)
            ).all()
        return snapshot, [JobEvent(at=r.at, level=r.level, message=r.message) for r in rows]

    def search_tags(self, owner: Owner, text: str, limit: int = 100) -> list[str]:
        """Distinct tags of an instance's jobs containing `text`, case-insensitively."""
        pattern = (
            "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        with self._read() as conn, conn.begin():
            rows = conn.execute(
                select(job_tags.c.tag)
                .distinct()
                .join(jobs, jobs.c.id == job_tags.c.job_id)
                .where(*owned_by(owner), func.lower(job_tags.c.tag).like(pattern, escape="\\"))
                .order_by(job_tags.c.tag)
                .limit(limit)
            ).scalars()
            return list(rows)

    # -- transitions ---------------------------------------------------------------------------

    def transition(
        self,
        job_id: str,
        to: JobState | Outcome,
        *,
        owner: Owner | None = None,
        held_by: Lease | None = None,
        message: str | None = None,
        when: Sequence[Any] = (),
        **values: Any,
    ) -> JobSnapshot | None:
        """`transitions.transition` in a transaction of its own; the job after, or None when
        its state (or worker) did not allow the change."""
        with self.tx.begin() as conn:
            if not transition(
                conn,
                job_id,
                to,
                owner=owner,
                held_by=held_by,
                message=message,
                when=when,
                **values,
            ):
                return None
            return self._load(conn, job_id, None)

    def cancel_job(self, owner: Owner, job_id: str) -> JobSnapshot:
        """Cancel a Queued or Running job of an owner."""
        snapshot = self.transition(job_id, outcome(End.CANCELLED_BY_CLIENT), owner=owner)
        if snapshot is not None:
            return snapshot
        current = self.get_job(owner, job_id)  # raises JobNotFound
        raise JobNotCancellable(job_id, current.state)

    def delete_job(self, owner: Owner, job_id: str) -> None:
        """Delete a terminal job with its tags, events and result."""
        with self.tx.begin() as conn:
            gone = conn.execute(
                delete(jobs).where(
                    jobs.c.id == job_id,
                    *owned_by(owner),
                    jobs.c.state.in_([s.value for s in TERMINAL]),
                )
            ).rowcount
            if gone:
                # SQLite enforces ON DELETE CASCADE only with the pragma; delete explicitly too.
                conn.execute(delete(job_tags).where(job_tags.c.job_id == job_id))
                conn.execute(delete(job_events).where(job_events.c.job_id == job_id))
                announce(conn, job_id, "deleted")
                return
            current = self._load(conn, job_id, owner)
        if current is None:
            raise JobNotFound(job_id)
        raise JobNotTerminal(job_id, current.state)

    def replace_tags(self, owner: Owner, job_id: str, tags: Sequence[str]) -> None:
        with self.tx.begin() as conn:
            exists = conn.execute(
                select(jobs.c.id).where(jobs.c.id == job_id, *owned_by(owner))
            ).one_or_none()
            if exists is None:
                raise JobNotFound(job_id)
            conn.execute(delete(job_tags).where(job_tags.c.job_id == job_id))
            unique = sorted(set(tags))
            if unique:
                conn.execute(insert(job_tags), [{"job_id": job_id, "tag": t} for t in unique])
            log_event(conn, job_id, f"Tags replaced: {unique}")
            announce(conn, job_id, "tags")

    # -- worker side ---------------------------------------------------------------------------

    def claim_next(
        self, worker_id: str, held_instances: Collection[str] = ()
    ) -> JobSnapshot | None:
        """The claim (see `transitions.claim_next`): the job now Running for `worker_id`."""
        with self.tx.begin() as conn:
            job_id = claim_next(conn, worker_id, held_instances)
            if job_id is None:
                return None
            snapshot = self._load(conn, job_id, None)
            params = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id)).scalar()
        assert snapshot is not None
        return _with(snapshot, params=params)

    def heartbeat(self, lease: Lease, job_id: str) -> bool:
        """Mark a running job alive; False when this run of it is no longer Running under
        `lease` (cancelled, requeued, taken over)."""
        with self.tx.begin() as conn:
            result = conn.execute(
                update(jobs).where(jobs.c.id == job_id, *held(lease)).values(heartbeat_at=utcnow())
            )
        return result.rowcount > 0

    def complete_job(
        self, job_id: str, lease: Lease, result: str, log: Sequence[str], quantum_seconds: float
    ) -> JobSnapshot | None:
        """Record a worker's result and its log lines in one transaction; None if the job was
        cancelled (or taken from this worker) meanwhile."""
        with self.tx.begin() as conn:
            done = transition(
                conn,
                job_id,
                outcome(End.COMPLETED, seconds=quantum_seconds),
                held_by=lease,
                result=result,
                quantum_seconds=quantum_seconds,
            )
            if not done:
                return None
            log_events(conn, job_id, log)
            return self._load(conn, job_id, None)

    def requeue(
        self, job_id: str, message: str, *, held_by: Lease | None, count_attempt: bool
    ) -> JobSnapshot | None:
        """Give a Running job back to the queue; None if it is not Running (on `held_by`).

        The claim counted an attempt; `count_attempt=False` gives it back, for a run that ended
        through no fault of the job (the server shutting down gracefully).
        """
        values: dict[str, Any] = dict(_REQUEUED)
        if not count_attempt:
            values["attempts"] = case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0)
        return self.transition(job_id, JobState.QUEUED, held_by=held_by, message=message, **values)

    def requeue_outcome(
        self, job_id: str, ended: Outcome, *, held_by: Lease | None
    ) -> JobSnapshot | None:
        """`requeue` for a requeueing row of the outcome table (its message and attempt rule)."""
        message, _, _ = ended.render()
        return self.requeue(job_id, message, held_by=held_by, count_attempt=ended.counts_attempt)

    def recover_interrupted(self, max_attempts: int, stale_after: timedelta) -> list[JobSnapshot]:
        """Requeue (or fail, past `max_attempts`) Running jobs whose heartbeat is older than
        `stale_after`: their worker is gone, whichever node ran it.

        Each change is guarded by the same staleness in its UPDATE, so a job whose worker beats
        again meanwhile is left alone. The attempt counts: the run ended without a word from
        its worker (a killed server). A graceful stop requeues its jobs itself, giving the
        attempt back (see `requeue`).
        """
        cutoff = utcnow() - stale_after
        stale = or_(jobs.c.heartbeat_at.is_(None), jobs.c.heartbeat_at < cutoff)
        with self._read() as conn, conn.begin():
            rows = conn.execute(
                select(
                    jobs.c.id,
                    jobs.c.attempts,
                    jobs.c.worker_id,
                    jobs.c.claim_token,
                    sessions.c.closed_at,
                )
                .select_from(jobs.outerjoin(sessions, sessions.c.id == jobs.c.session_id))
                .where(jobs.c.state == JobState.RUNNING.value, stale)
            ).all()
        recovered: list[JobSnapshot] = []
        for job_id, attempts, worker_id, token, session_closed_at in rows:
            if session_closed_at is not None:
                # Its session closed while it ran: it may finish, but it cannot queue again
                # (a closed session holds no queued jobs), so it ends like them.
                end: Outcome | JobState = outcome(End.INTERRUPTED_AFTER_SESSION_CLOSED)
                values: dict[str, Any] = {}
            elif attempts >= max_attempts:
                end, values = outcome(End.WORKER_LOST, attempts=attempts), {}
            else:
                end = outcome(
                    End.REQUEUED_WORKER_LOST, attempts=attempts, max_attempts=max_attempts
                )
                values = dict(_REQUEUED)
            lease = Lease(worker_id, token)
            snap = self.transition(job_id, end, held_by=lease, when=[stale], **values)
            if snap is not None:
                recovered.append(snap)
        return recovered

    def beat(self, worker_ids: Collection[str]) -> int:
        """Heartbeat every Running job of these workers (one statement per node and beat)."""
        if not worker_ids:
            return 0
        with self.tx.begin() as conn:
            return int(
                conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.worker_id.in_(list(worker_ids)),
                        jobs.c.state == JobState.RUNNING.value,
                    )
                    .values(heartbeat_at=utcnow())
                ).rowcount
            )

    def count_by_state(self) -> dict[str, int]:
        with reading(self.engine, single=True) as conn:
            rows = conn.execute(_BY_STATE).all()  # from ix_jobs_state_created alone
        return {state: int(n) for state, n in rows}

    def queue_length(self, backend: str) -> int:
        with reading(self.engine, single=True) as conn:
            return int(conn.execute(QUEUED_ON, {"backend": backend}).scalar_one())

    # -- control plane -------------------------------------------------------------------------

    def release(
        self,
        job_id: str | None = None,
        backend: str | None = None,
        message: str = "Job released through the control plane",
    ) -> list[str]:
        """Release held Queued jobs (one, one backend's, or all); the ids released."""
        conditions = [jobs.c.held == true(), jobs.c.state == JobState.QUEUED.value]
        if job_id is not None:
            conditions.append(jobs.c.id == job_id)
        if backend is not None:
            conditions.append(jobs.c.backend == backend)
        with self.tx.begin() as conn:
            ids = list(
                conn.execute(
                    update(jobs).where(*conditions).values(held=False).returning(jobs.c.id)
                )
                .scalars()
                .all()
            )
            for released in ids:
                log_event(conn, released, message)
                announce(conn, released, JobState.QUEUED.value)  # wakes worker nodes
        return ids

    def reset(self, instance: str | None = None) -> list[str]:
        """Delete every job and session (of one instance); the ids that were Running."""
        job_scope = [] if instance is None else [jobs.c.instance == instance]
        session_scope = [] if instance is None else [sessions.c.instance == instance]
        with self.tx.begin() as conn:
            running = list(
                conn.execute(
                    select(jobs.c.id).where(*job_scope, jobs.c.state == JobState.RUNNING.value)
                )
                .scalars()
                .all()
            )
            doomed = select(jobs.c.id).where(*job_scope)
            conn.execute(delete(job_tags).where(job_tags.c.job_id.in_(doomed)))
            conn.execute(delete(job_events).where(job_events.c.job_id.in_(doomed)))
            conn.execute(delete(jobs).where(*job_scope))
            conn.execute(delete(sessions).where(*session_scope))
            announce(conn, ALL, "reset")
        return running

    def all_jobs(
        self,
        *,
        limit: int = 100,
        state: JobState | None = None,
        instance: str | None = None,
        backend: str | None = None,
    ) -> list[JobSnapshot]:
        """Newest jobs across every instance and API, for the control plane."""
        query = select(*_SUMMARY).order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit)
        if state is not None:
            query = query.where(jobs.c.state == state.value)
        if instance is not None:
            query = query.where(jobs.c.instance == instance)
        if backend is not None:
            query = query.where(jobs.c.backend == backend)
        with self._read() as conn, conn.begin():
            rows = conn.execute(query).all()
            tags = self._tags_of(conn, [r._mapping["id"] for r in rows])
        return [_snapshot(r, tags[r._mapping["id"]]) for r in rows]

    def find_job(self, job_id: str, with_params: bool = False) -> JobSnapshot:
        """Any instance's job, for the control plane."""
        return self._get(None, job_id, with_params)

    def raw_result(self, job_id: str) -> str | None:
        with self._read() as conn, conn.begin():
            return conn.execute(select(jobs.c.result).where(jobs.c.id == job_id)).scalar()

    def queue_lengths(self) -> dict[str, int]:
        with reading(self.engine, single=True) as conn:
            rows = conn.execute(
                select(jobs.c.backend, func.count())
                .where(jobs.c.state == JobState.QUEUED.value)
                .group_by(jobs.c.backend)
            ).all()
        return {backend: int(n) for backend, n in rows}


def _with(snapshot: JobSnapshot, **changes: Any) -> JobSnapshot:
    return replace(snapshot, **changes)
