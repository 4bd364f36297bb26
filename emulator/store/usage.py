"""The usage ledger: execution seconds of an instance's ended jobs, summed over a period."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from emulator.store.tables import controls, jobs

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
