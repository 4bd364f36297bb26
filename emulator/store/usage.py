"""The usage ledger: execution seconds of an instance's ended jobs, summed over a period."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from emulator.store.tables import jobs


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
        if not limits:
            return set()
        with self._read() as conn, conn.begin():
            rows = conn.execute(
                select(jobs.c.instance, func.coalesce(func.sum(jobs.c.quantum_seconds), 0.0))
                .where(jobs.c.instance.in_(list(limits)), jobs.c.finished_at >= since)
                .group_by(jobs.c.instance)
            ).all()
        used = {instance: float(seconds) for instance, seconds in rows}
        return {crn for crn, limit in limits.items() if used.get(crn, 0.0) >= limit}
