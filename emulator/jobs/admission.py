"""Admission rules for Direct Access jobs: reservations (423) and execution lanes (429)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dateutil.parser import isoparse

from emulator.jobs.model import JobState, naive_utc


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


@dataclass(frozen=True)
class InstanceLimits:
    """Per-instance submission limits of the Runtime API; 0 switches a limit off."""

    max_pending: int = 0
    per_minute: int = 0
    pending_retry_after: int = 5

    @property
    def active(self) -> bool:
        return self.max_pending > 0 or self.per_minute > 0
