"""The job lifecycle shared by every API: one state machine, frozen snapshots of stored jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class JobState(StrEnum):
    """Internal job states. Each API maps them onto its own vocabulary."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
PENDING = frozenset({JobState.QUEUED, JobState.RUNNING})

# Target state -> the states it may be entered from. The store puts this in the WHERE clause
# of the UPDATE, so a transition is atomic and concurrent writers cannot both win.
ALLOWED_FROM: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING}),  # requeue after a lost worker
    JobState.RUNNING: frozenset({JobState.QUEUED}),
    JobState.COMPLETED: frozenset({JobState.RUNNING}),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.RUNNING}),
    JobState.CANCELLED: frozenset({JobState.QUEUED, JobState.RUNNING}),
}


def utcnow() -> datetime:
    """Naive UTC: what the store keeps (SQLite has no time zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime) -> datetime:
    """Any aware time as the store's naive UTC; naive times are taken as UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def isoformat(moment: datetime | None) -> str | None:
    """IBM's timestamp form: ISO 8601 with microseconds and a `Z`."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Api(StrEnum):
    """The API surface a job was submitted through; each sees only its own jobs."""

    RUNTIME = "runtime"
    DIRECT_ACCESS = "direct_access"


@dataclass(frozen=True)
class Owner:
    """Who a job belongs to: an instance, through one API. Every store call requires one."""

    instance: str
    api: Api = Api.RUNTIME


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one run of a job: the worker and the claim's fencing token.

    Every claim increments the job's token (never given back, unlike an attempt), so a worker
    that lost its job — requeued by the heartbeat sweep, taken over by another node, even
    reclaimed later by the same worker — cannot write into the run that followed.
    """

    worker_id: str
    token: int


@dataclass(frozen=True)
class JobSnapshot:
    """A stored job as of one read. Never a live ORM object."""

    id: str
    instance: str
    program_id: str
    backend: str
    state: JobState
    created_at: datetime
    params: str | None = field(default=None, repr=False)  # None when not loaded
    reason: str | None = None
    reason_code: int | None = None
    reason_solution: str | None = None
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    log_level: str = "WARNING"
    cost: int | None = None
    private: bool = False
    runtime: str | None = None
    calibration_id: str | None = None
    caller: str | None = None
    running_at: datetime | None = None
    finished_at: datetime | None = None
    worker_id: str | None = None
    attempts: int = 0
    claim_token: int = 0
    quantum_seconds: float | None = None
    api: Api = Api.RUNTIME
    storage: str | None = None  # JSON of the Direct Access storage locations
    time_limit: int | None = None  # seconds of execution before the job is stopped
    # Control plane (see domain/controls.py): held for manual release, a minimum run time,
    # an injected outcome (JSON), and the default sampling seed after `POST /_emulator/seed`.
    held: bool = False
    release_after_polls: int | None = None
    min_run_seconds: float | None = None
    outcome: str | None = None
    seed: int | None = None

    @property
    def owner(self) -> Owner:
        return Owner(self.instance, self.api)

    @property
    def lease(self) -> Lease | None:
        """The hold of the worker running it (None unless Running)."""
        if self.worker_id is None:
            return None
        return Lease(self.worker_id, self.claim_token)


@dataclass(frozen=True)
class NewJob:
    """What a create request stores."""

    id: str
    instance: str
    program_id: str
    backend: str
    params: str
    log_level: str = "WARNING"
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    cost: int | None = None
    private: bool = False
    runtime: str | None = None
    calibration_id: str | None = None
    caller: str | None = None
    api: Api = Api.RUNTIME
    storage: str | None = None
    time_limit: int | None = None

    @property
    def owner(self) -> Owner:
        return Owner(self.instance, self.api)


@dataclass(frozen=True)
class JobFilter:
    """`GET /jobs` filters, already validated."""

    limit: int = 200
    offset: int = 0
    pending: bool | None = None
    program_id: str | None = None
    backend: str | None = None
    session_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    tags: tuple[str, ...] = ()
    descending: bool = True
    hidden_backends: tuple[str, ...] = ()
    """Backends whose jobs are left out (the mock ones, unless `include_mocks`)."""


@dataclass(frozen=True)
class JobEvent:
    """One line of a job's log."""

    at: datetime
    level: str
    message: str


@dataclass(frozen=True)
class DirectAccessJobRequest:
    """A validated Direct Access submission: the client chose the id and the storage."""

    id: str
    program_id: str
    backend: str
    storage: dict[str, dict[str, str]]
    timeout_secs: int
    log_level: str = "warning"


@dataclass(frozen=True)
class JobRequest:
    """A validated submission, independent of the API it came through."""

    program_id: str
    backend: str
    params: object  # plain JSON value; RuntimeEncoder markers still as dicts
    log_level: str = "WARNING"
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    cost: int | None = None
    private: bool = False
    runtime: str | None = None
    calibration_id: str | None = None
    caller: str | None = None
