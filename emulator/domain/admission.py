"""Admission rules: Direct Access reservations (423) and lanes (429); Runtime instance limits
(pending jobs and submission rate, 429) and the monthly usage ledger (409 or held jobs)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from dateutil.parser import isoparse

from emulator.domain.errors import (
    DuplicateJobId,
    LanesFull,
    PendingJobsLimit,
    SubmissionRateLimited,
    UsageLimitReached,
)
from emulator.domain.jobs import JobState, naive_utc


class LaneRule(StrEnum):
    """Which of a backend's jobs hold an execution lane."""

    # IBM documents "delete terminated jobs to submit more", and its simulators count every
    # stored job of the backend whatever its status: only deletion frees a lane.
    ALL = "all"
    # qrmi's advisory capacity counts only Running jobs.
    RUNNING = "running"

    @property
    def states(self) -> frozenset[JobState] | None:
        """The states that hold a lane; None means every state."""
        if self is LaneRule.RUNNING:
            return frozenset({JobState.QUEUED, JobState.RUNNING})
        return None


@dataclass(frozen=True)
class LaneLimit:
    """At most `limit` Direct Access jobs of a backend hold lanes under `rule`."""

    limit: int
    rule: LaneRule = LaneRule.ALL


@dataclass(frozen=True)
class Reservation:
    """A backend reserved from `start` to `end` (naive UTC), optionally for one instance."""

    backend: str
    start: datetime
    end: datetime
    instance: str | None = None

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def excludes(self, instance_crn: str) -> bool:
        """Whether a job of this instance is refused while the reservation is active."""
        return self.instance is None or self.instance != instance_crn


def parse_reservation(spec: str, instances: dict[str, str] | None = None) -> Reservation:
    """`backend=NAME;start=ISO;end=ISO[;instance=NAME|CRN]` → Reservation.

    Raises ValueError naming the problem. `instances` maps instance names to CRNs.
    """
    fields: dict[str, str] = {}
    for part in spec.split(";"):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"reservation {spec!r}: expected key=value parts separated by ';'")
        fields[key.strip()] = value.strip()
    missing = {"backend", "start", "end"} - set(fields)
    if missing:
        raise ValueError(f"reservation {spec!r}: missing {', '.join(sorted(missing))}")
    try:
        start = naive_utc(isoparse(fields["start"]))
        end = naive_utc(isoparse(fields["end"]))
    except ValueError as exc:
        raise ValueError(f"reservation {spec!r}: start/end must be ISO 8601 ({exc})") from None
    if end <= start:
        raise ValueError(f"reservation {spec!r}: end must be after start")
    instance = fields.get("instance")
    if instance is not None and instances is not None:
        instance = instances.get(instance, instance)
    return Reservation(backend=fields["backend"], start=start, end=end, instance=instance)


def active_reservation(
    reservations: tuple[Reservation, ...], backend: str, now: datetime
) -> Reservation | None:
    """The reservation holding `backend` at `now`, if any."""
    for reservation in reservations:
        if reservation.backend == backend and reservation.active(now):
            return reservation
    return None


class UsageAction(StrEnum):
    """What happens to new jobs of an instance that has used up its time."""

    # The Open plan's rule: `POST /jobs` is refused until the period resets.
    REFUSE = "refuse"
    # IBM's rule for allocation limits: jobs are accepted and stay Queued "until time is
    # made available" (the client warns exactly that); cancelling them still works.
    HOLD = "hold"


@dataclass(frozen=True)
class UsageLimits:
    """Per-instance usage limits in seconds of execution per usage period (by CRN)."""

    seconds: Mapping[str, float] = field(default_factory=dict)
    action: UsageAction = UsageAction.REFUSE

    def limit_for(self, instance_crn: str) -> float | None:
        return self.seconds.get(instance_crn)

    def with_limits(self, overrides: Mapping[str, float]) -> UsageLimits:
        """These limits with the instances' own (`PUT /instances/configuration`) in force."""
        if not overrides:
            return self
        return UsageLimits({**self.seconds, **overrides}, self.action)

    def refuses(self, instance_crn: str) -> bool:
        """Whether submissions of this instance are checked against its limit."""
        return self.action is UsageAction.REFUSE and instance_crn in self.seconds


def usage_period(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding `now`: IBM resets Open-plan usage on the 1st, 00:00 UTC."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


@dataclass(frozen=True)
class UsageReport:
    """An instance's ledger for the current period, as `GET /instances/usage` shows it."""

    consumed: float
    limit: float | None
    period_start: datetime
    period_end: datetime

    @property
    def reached(self) -> bool | None:
        """None when no limit applies (IBM leaves `usage_limit_reached` undefined then)."""
        return None if self.limit is None else self.consumed >= self.limit


def parse_usage_limits(specs: tuple[str, ...], instances: dict[str, str]) -> dict[str, float]:
    """`SECONDS` (every instance) or `NAME=SECONDS` (one instance, by name or CRN) → by CRN.

    Raises ValueError naming the problem. A per-instance entry wins over a bare one.
    """
    everyone: float | None = None
    one: dict[str, float] = {}
    for spec in specs:
        name, _, value = spec.rpartition("=")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{spec!r}: the limit must be a number of seconds") from None
        if not seconds >= 0 or seconds == float("inf"):
            raise ValueError(f"{spec!r}: the limit must be a finite number >= 0")
        if not name:
            everyone = seconds
        elif name in instances:
            one[instances[name]] = seconds
        elif name in instances.values():
            one[name] = seconds
        else:
            raise ValueError(f"{spec!r}: no instance named {name!r}")
    out = dict.fromkeys(instances.values(), everyone) if everyone is not None else {}
    out.update(one)
    return out


@dataclass(frozen=True)
class InstanceLimits:
    """Per-instance submission limits of the Runtime API; 0 switches a limit off."""

    max_pending: int = 0
    per_minute: int = 0
    pending_retry_after: int = 5
    usage: UsageLimits = field(default_factory=UsageLimits)

    def with_usage_limits(self, overrides: Mapping[str, float]) -> InstanceLimits:
        return replace(self, usage=self.usage.with_limits(overrides)) if overrides else self

    @property
    def active(self) -> bool:
        refuses_on_usage = self.usage.action is UsageAction.REFUSE and bool(self.usage.seconds)
        return self.max_pending > 0 or self.per_minute > 0 or refuses_on_usage


# -- decisions, as pure functions of what the submission's transaction read -------------------


@dataclass(frozen=True)
class InstanceActivity:
    """What an instance's limits are judged on, read in the submission's transaction."""

    pending: int = 0
    recent: tuple[datetime, ...] = ()
    """Creation times of its jobs in the last minute, oldest first."""
    consumed: float = 0.0
    """Execution seconds this usage period."""


def check_instance_limits(
    activity: InstanceActivity, limits: InstanceLimits, instance: str, now: datetime
) -> None:
    """Refuse a Runtime submission past its instance's limits: pending jobs (429), usage (409),
    submission rate (429). Limits first: a client over them learns that, whatever else."""
    if limits.max_pending > 0 and activity.pending >= limits.max_pending:
        raise PendingJobsLimit(
            f"You have reached the maximum of {limits.max_pending} pending jobs "
            "(queued or running); wait for one to finish or cancel one.",
            limits.pending_retry_after,
        )
    limit = limits.usage.limit_for(instance)
    if limit is not None and limits.usage.refuses(instance) and activity.consumed >= limit:
        _, end = usage_period(now)
        raise UsageLimitReached(
            f"You have exceeded your monthly quota: {activity.consumed:.3f} of {limit:g} "
            f"seconds used; it resets at {end.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}."
        )
    if limits.per_minute > 0 and len(activity.recent) >= limits.per_minute:
        oldest_leaves = activity.recent[len(activity.recent) - limits.per_minute]
        wait = math.ceil((oldest_leaves + timedelta(minutes=1) - now).total_seconds())
        raise SubmissionRateLimited(
            f"Too many job submissions: the limit is {limits.per_minute} per minute "
            "for this instance.",
            wait,
        )


def check_direct_access_admission(
    job_id: str, exists: bool, backend: str, lanes_held: int, lanes: LaneLimit
) -> None:
    """IBM's order after the backend checks: a new id (409), then a free lane (429)."""
    if exists:
        raise DuplicateJobId(job_id)
    if lanes_held >= lanes.limit:
        raise LanesFull(backend, lanes.limit)
