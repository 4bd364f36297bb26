"""`GET /workloads` in one statement: the owner's standalone jobs and sessions as one list
(UNION ALL), filtered, keyset-paged by (created, id), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    and_,
    case,
    distinct,
    false,
    func,
    literal,
    null,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.engine import Engine

from emulator.domain.jobs import Owner
from emulator.domain.workloads import JOB_STATUS, Workload, WorkloadFilter, WorkloadPage
from emulator.store.db import reading
from emulator.store.tables import job_tags, jobs, sessions


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _union(owner: Owner, flt: WorkloadFilter) -> Any:
    job_conditions: list[Any] = [
        jobs.c.instance == owner.instance,
        jobs.c.api == owner.api.value,
        jobs.c.session_id.is_(None),
    ]
    session_conditions: list[Any] = [sessions.c.instance == owner.instance]
    if flt.search:
        pattern = _like(flt.search)
        tagged = select(job_tags.c.job_id).where(
            func.lower(job_tags.c.tag).like(pattern, escape="\\")
        )
        job_conditions.append(
            or_(func.lower(jobs.c.id).like(pattern, escape="\\"), jobs.c.id.in_(tagged))
        )
        session_conditions.append(func.lower(sessions.c.id).like(pattern, escape="\\"))
    if flt.tags:
        wanted = sorted(set(flt.tags))
        every = (
            select(job_tags.c.job_id)
            .where(job_tags.c.tag.in_(wanted))
            .group_by(job_tags.c.job_id)
            .having(func.count(distinct(job_tags.c.tag)) == len(wanted))
        )
        job_conditions.append(jobs.c.id.in_(every))
        session_conditions.append(false())  # sessions carry no tags
    status = case(
        *((jobs.c.state == state, literal(name)) for state, name in JOB_STATUS.items()),
        else_=literal("pending"),
    )
    session_seconds = (
        select(func.sum(jobs.c.quantum_seconds))
        .where(jobs.c.session_id == sessions.c.id)
        .scalar_subquery()
    )
    job_rows = select(
        jobs.c.id.label("id"),
        jobs.c.created_at.label("created"),
        jobs.c.finished_at.label("ended"),
        jobs.c.backend.label("backend"),
        literal("job").label("mode"),
        status.label("status"),
        null().cast(Boolean).label("accepting_jobs"),
        jobs.c.reason.label("status_reason"),
        jobs.c.quantum_seconds.label("seconds"),
    ).where(*job_conditions)
    session_rows = select(
        sessions.c.id,
        sessions.c.created_at,
        sessions.c.closed_at,
        sessions.c.backend,
        case((sessions.c.mode == "batch", literal("batch")), else_=literal("session")),
        case((sessions.c.closed_at.is_(None), literal("in_progress")), else_=literal("completed")),
        sessions.c.accepting_jobs,
        sessions.c.state_reason,
        session_seconds,
    ).where(*session_conditions)
    return union_all(job_rows, session_rows).subquery("workloads")


def _outer_conditions(u: Any, flt: WorkloadFilter) -> list[Any]:
    conditions: list[Any] = []
    if flt.backend:
        conditions.append(u.c.backend == flt.backend)
    if flt.hidden_backends:
        conditions.append(u.c.backend.not_in(flt.hidden_backends))
    if flt.statuses:
        conditions.append(u.c.status.in_(flt.statuses))
    if flt.mode:
        conditions.append(u.c.mode == flt.mode)
    if flt.created_after:
        conditions.append(u.c.created >= flt.created_after)
    if flt.created_before:
        conditions.append(u.c.created <= flt.created_before)
    return conditions


def list_workloads(engine: Engine, owner: Owner, flt: WorkloadFilter) -> WorkloadPage:
    """One page of workloads in `flt`'s order, with the total and whether pages lie before
    and after it."""
    u = _union(owner, flt)
    conditions = _outer_conditions(u, flt)
    key = tuple_(u.c.created, u.c.id)
    # Walking towards `previous` reads the list backwards, then turns the page around.
    backwards = flt.before is not None
    ascending = flt.descending == backwards
    page_conditions = list(conditions)
    cursor = flt.before if backwards else flt.after
    if cursor is not None:
        at = tuple_(literal(cursor.created), literal(cursor.id))
        page_conditions.append(key > at if ascending else key < at)
    order = [u.c.created.asc(), u.c.id.asc()] if ascending else [u.c.created.desc(), u.c.id.desc()]
    page = select(u).where(and_(*page_conditions)).order_by(*order).limit(flt.limit + 1)
    count = select(func.count()).select_from(u).where(and_(*conditions))
    with reading(engine) as conn, conn.begin():
        rows = conn.execute(page).all()
        total = int(conn.execute(count).scalar_one())
        more = len(rows) > flt.limit
        rows = rows[: flt.limit]
        ids = [r.id for r in rows if r.mode == "job"]
        tags: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            for job_id, tag in conn.execute(
                select(job_tags.c.job_id, job_tags.c.tag)
                .where(job_tags.c.job_id.in_(ids))
                .order_by(job_tags.c.tag)
            ):
                tags[job_id].append(tag)
    if backwards:
        rows.reverse()
    workloads = [
        Workload(
            id=r.id,
            created=r.created,
            ended=r.ended,
            backend=r.backend,
            mode=r.mode,
            status=r.status,
            accepting_jobs=None if r.mode == "job" else bool(r.accepting_jobs),
            status_reason=r.status_reason,
            seconds=None if r.seconds is None else float(r.seconds),
            tags=tuple(tags.get(r.id, ())),
        )
        for r in rows
    ]
    if backwards:
        return WorkloadPage(workloads, total, has_previous=more, has_next=True)
    return WorkloadPage(workloads, total, has_previous=flt.after is not None, has_next=more)
