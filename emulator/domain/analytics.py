"""Usage analytics (`GET /analytics/*`): IBM's usage metrics over ended jobs, as pure functions.

IBM's metrics are milliseconds (usage, queue time) and counts (jobs, sessions), for all jobs
and split into dedicated sessions, batches and individual jobs; `avg_`/`max_` are per
session (its jobs' usage summed) or per job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

GROUPS = ("instance", "backend", "user_id", "plan", "subscription_id")
DATE_GROUPS = ("instance",)


@dataclass(frozen=True)
class UsageRow:
    """One ended job, as the analytics read it."""

    instance: str
    backend: str
    plan: str
    subscription_id: str
    mode: str | None  # "dedicated", "batch", or None for a job outside any session
    session_id: str | None
    seconds: float
    created_at: datetime
    running_at: datetime | None
    finished_at: datetime


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _per_session(rows: list[UsageRow]) -> list[float]:
    sums: dict[str, float] = defaultdict(float)
    for row in rows:
        sums[row.session_id or ""] += row.seconds
    return list(sums.values())


def _usage_of(values: list[float], prefix: str) -> dict[str, float]:
    count = len(values)
    total = sum(values)
    return {
        f"{prefix}_usage": _ms(total),
        f"avg_{prefix}_usage": _ms(total / count) if count else 0.0,
        f"max_{prefix}_usage": _ms(max(values)) if count else 0.0,
    }


def metrics(rows: Iterable[UsageRow]) -> dict[str, float]:
    """IBM's 21 usage metrics of `rows`."""
    rows = list(rows)
    dedicated = [r for r in rows if r.mode == "dedicated"]
    batch = [r for r in rows if r.mode == "batch"]
    sessions = dedicated + batch
    individual = [r for r in rows if r.mode is None]
    queues = [
        max(0.0, (r.running_at - r.created_at).total_seconds())
        for r in rows
        if r.running_at is not None
    ]
    out: dict[str, float] = {"usage": _ms(sum(r.seconds for r in rows)), "jobs": len(rows)}
    out["sessions"] = len({r.session_id for r in sessions})
    out.update(_usage_of(_per_session(sessions), "sessions"))
    out["batch_sessions"] = len({r.session_id for r in batch})
    out.update(_usage_of(_per_session(batch), "batch_sessions"))
    out["dedicated_sessions"] = len({r.session_id for r in dedicated})
    out.update(_usage_of(_per_session(dedicated), "dedicated_sessions"))
    out["individual_jobs"] = len(individual)
    out.update(_usage_of([r.seconds for r in individual], "individual_jobs"))
    out["queue_time"] = _ms(sum(queues))
    out["avg_queue_time"] = _ms(sum(queues) / len(queues)) if queues else 0.0
    out["max_queue_time"] = _ms(max(queues)) if queues else 0.0
    return out


_KEYS: dict[str, Callable[[UsageRow], str | None]] = {
    "instance": lambda r: r.instance,
    "backend": lambda r: r.backend,
    "user_id": lambda r: None,  # the emulator has no users: one group, key null (IBM allows)
    "plan": lambda r: r.plan,
    "subscription_id": lambda r: r.subscription_id,
}


def grouped(rows: Iterable[UsageRow], by: str) -> list[dict[str, object]]:
    """`usage_grouped`: one entry per key, in key order."""
    groups: dict[str | None, list[UsageRow]] = defaultdict(list)
    for row in rows:
        groups[_KEYS[by](row)].append(row)
    return [
        {"key": key, **metrics(members)}
        for key, members in sorted(groups.items(), key=lambda kv: kv[0] or "")
    ]


def grouped_by_date(
    rows: Iterable[UsageRow], by: str, start: datetime, end: datetime
) -> list[dict[str, object]]:
    """`usage_grouped_by_date`: per key and UTC day (of the job's end) within [start, end)."""
    buckets: dict[tuple[str, datetime], list[UsageRow]] = defaultdict(list)
    for row in rows:
        day = row.finished_at.replace(hour=0, minute=0, second=0, microsecond=0)
        buckets[(str(_KEYS[by](row)), day)].append(row)
    out = []
    for (key, day), members in sorted(buckets.items()):
        out.append(
            {
                "key": key,
                "interval_start": max(day, start),
                "interval_end": min(day + timedelta(days=1), end),
                **metrics(members),
            }
        )
    return out
