"""The usage ledger: execution seconds of an instance's ended jobs, summed over a period."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from emulator.store.tables import controls, jobs, sessions

INSTANCE_LIMIT = "instance_limit"
"""The controls-table kind of an instance's own usage limit (scope: its CRN)."""


def instance_limits_in(conn: Connection, instance: str | None = None) -> dict[str, float]:
    """The instances' own limits (seconds per usage period), by CRN; one instance's if given."""
    query = select(controls.c.scope, controls.c.body).where(controls.c.kind == INSTANCE_LIMIT)
    if instance is not None:
        query = query.where(controls.c.scope == instance)
    return {scope: float(json.loads(body)["seconds"]) for scope, body in conn.execute(query)}


def consumed_seconds(conn: Connection, instance: str, since: datetime | None) -> float:
    """Execution seconds of an instance's jobs that ended after `since`, through any API."""
    query = select(func.coalesce(func.sum(jobs.c.quantum_seconds), 0.0)).where(
        jobs.c.instance == instance
    )
    if since is not None:
        query = query.where(jobs.c.finished_at >= since)
    return float(conn.execute(query).scalar_one())


class UsageLedger:
    """Read-only sums over the jobs table (each call one read transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(read_only=True)

    def seconds(self, instance: str, since: datetime | None = None) -> float:
        """Execution seconds of an instance's jobs that ended after `since`."""
        with self._read() as conn, conn.begin():
            return consumed_seconds(conn, instance, since)

    def ended_jobs(
        self, instances: list[str], start: datetime, end: datetime, backends: list[str] | None
    ) -> list[tuple[str, str, str | None, str | None, float, datetime, datetime | None, datetime]]:
        with self._read() as conn, conn.begin():
            return ended_jobs(conn, instances, start, end, backends)

    def exhausted(self, limits: Mapping[str, float], since: datetime) -> set[str]:
        """The instances (CRNs) among `limits` whose usage since `since` reached their limit."""
        with self._read() as conn, conn.begin():
            # The instances' own limits (PUT /instances/configuration) win over the server's.
            limits = {**limits, **instance_limits_in(conn)}
            if not limits:
                return set()
            rows = conn.execute(
                select(jobs.c.instance, func.coalesce(func.sum(jobs.c.quantum_seconds), 0.0))
                .where(jobs.c.instance.in_(list(limits)), jobs.c.finished_at >= since)
                .group_by(jobs.c.instance)
            ).all()
        used = {instance: float(seconds) for instance, seconds in rows}
        return {crn for crn, limit in limits.items() if used.get(crn, 0.0) >= limit}


def ended_jobs(
    conn: Connection,
    instances: list[str],
    start: datetime,
    end: datetime,
    backends: list[str] | None = None,
) -> list[tuple[str, str, str | None, str | None, float, datetime, datetime | None, datetime]]:
    """(instance, backend, session mode, session id, seconds, created, running, finished) of
    the instances' jobs that ended in [start, end), through any API."""
    query = (
        select(
            jobs.c.instance,
            jobs.c.backend,
            sessions.c.mode,
            jobs.c.session_id,
            func.coalesce(jobs.c.quantum_seconds, 0.0),
            jobs.c.created_at,
            jobs.c.running_at,
            jobs.c.finished_at,
        )
        .select_from(jobs.outerjoin(sessions, sessions.c.id == jobs.c.session_id))
        .where(
            jobs.c.instance.in_(instances),
            jobs.c.finished_at >= start,
            jobs.c.finished_at < end,
        )
        .order_by(jobs.c.finished_at)
    )
    if backends:
        query = query.where(jobs.c.backend.in_(backends))
    return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]
