"""Every way a job's run can end, in one table: the state it leads to, the reason code, the
message and the solution the client sees.

An `Outcome` names a row and fills its blanks; `render()` gives the column values the store
writes. Codes IBM documents: 1305 (ran too long: the client raises RuntimeJobMaxTimeoutError),
1217 (session closed), 1007 (backend), 1002 (invalid input); 1517 is the emulator's for
execution failures (IBM's simulators use 5203).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from emulator.domain.jobs import JobState

RAN_TOO_LONG = 1305
SESSION_CLOSED = 1217
BACKEND_NOT_FOUND = 1007
EXECUTION_FAILED = 1517


class End(StrEnum):
    """How a run ended (or was given back to the queue)."""

    COMPLETED = "completed"
    CANCELLED_BY_CLIENT = "cancelled_by_client"
    RAN_TOO_LONG = "ran_too_long"
    PROGRAM_FAILED = "program_failed"
    STORAGE_FAILED = "storage_failed"
    BACKEND_GONE = "backend_gone"
    EMULATOR_ERROR = "emulator_error"
    INJECTED_FAILURE = "injected_failure"
    INJECTED_CANCEL = "injected_cancel"
    WORKER_DIED = "worker_died"
    WORKER_LOST = "worker_lost"
    INTERRUPTED_AFTER_SESSION_CLOSED = "interrupted_after_session_closed"
    SESSION_EXPIRED = "session_expired"
    SESSION_CANCELLED = "session_cancelled"
    REQUEUED_SHUTDOWN = "requeued_shutdown"
    REQUEUED_WORKER_DIED = "requeued_worker_died"
    REQUEUED_WORKER_LOST = "requeued_worker_lost"


@dataclass(frozen=True)
class Row:
    """One way to end: templates are filled from the outcome's fields (`{name}`)."""

    state: JobState
    log: str
    reason: str | None = None
    code: int | None = None
    solution: str | None = None
    level: str = "INFO"
    counts_attempt: bool = True
    """For a requeue: whether the run just ended used up one of the job's attempts."""


OUTCOMES: dict[End, Row] = {
    End.COMPLETED: Row(JobState.COMPLETED, "Job completed in {seconds:.3f} s of simulation"),
    End.CANCELLED_BY_CLIENT: Row(JobState.CANCELLED, "Job cancelled by request"),
    End.RAN_TOO_LONG: Row(
        JobState.CANCELLED,
        "Job cancelled: it ran longer than its {limit} of {seconds} s",
        "Job ran longer than its {limit} of {seconds} s and was stopped",
        RAN_TOO_LONG,
        "Increase {limit} or reduce the work of the job.",
    ),
    End.PROGRAM_FAILED: Row(
        JobState.FAILED, "Job failed: {reason}\n{detail}", "{reason}", None, "{solution}", "ERROR"
    ),
    End.STORAGE_FAILED: Row(
        JobState.FAILED,
        "Job failed: Storage error: {error}",
        "Storage error: {error}",
        EXECUTION_FAILED,
        "Check that the job's presigned URLs are valid, unexpired and reachable from the "
        "emulator.",
        "ERROR",
    ),
    End.BACKEND_GONE: Row(
        JobState.FAILED,
        "Job failed: backend {backend} is not served any more",
        "Backend {backend} is not served by this emulator any more.",
        BACKEND_NOT_FOUND,
        "Resubmit the job to a served backend.",
        "ERROR",
    ),
    End.EMULATOR_ERROR: Row(
        JobState.FAILED,
        "Job failed: emulator error {error}",
        "The emulator failed while handling this job: {error}",
        EXECUTION_FAILED,
        "This is likely an emulator defect; see the server log.",
        "ERROR",
    ),
    End.INJECTED_FAILURE: Row(
        JobState.FAILED,
        "Job failed: {reason}\n",
        "{reason}",
        EXECUTION_FAILED,
        "Remove the outcome rule (POST /_emulator/outcomes) to run jobs again.",
        "ERROR",
    ),
    End.INJECTED_CANCEL: Row(JobState.CANCELLED, "Job cancelled: {why}", "{reason}"),
    End.WORKER_DIED: Row(
        JobState.FAILED,
        "Job failed: the simulation process {what} ({attempt})",
        "The simulation process {what}, on the last of the job's {max_attempts} attempts.",
        EXECUTION_FAILED,
        "{solution}",
        "ERROR",
    ),
    End.WORKER_LOST: Row(
        JobState.FAILED,
        "Job failed: its worker stopped while running it, too many times",
        "The emulator stopped while this job was running ({attempts} attempts); it was not "
        "retried again.",
        EXECUTION_FAILED,
        "Submit the job again.",
        "ERROR",
    ),
    End.INTERRUPTED_AFTER_SESSION_CLOSED: Row(
        JobState.FAILED,
        "Job failed: interrupted after its session closed",
        "The emulator stopped while this job was running, and its session has closed since, "
        "so it cannot run again.",
        SESSION_CLOSED,
        "Submit the job again, in a new session or batch.",
        "ERROR",
    ),
    End.SESSION_EXPIRED: Row(
        JobState.FAILED,
        "Session {session_id} closed before the job ran: {why}",
        "Session {session_id} closed before the job ran: {why}",
        SESSION_CLOSED,
        "Submit the job again, in a new session or batch.",
        "ERROR",
    ),
    End.SESSION_CANCELLED: Row(
        JobState.CANCELLED,
        "Session {session_id} closed before the job ran: {why}",
        "Session {session_id} closed before the job ran: {why}",
        SESSION_CLOSED,
        "Submit the job again, in a new session or batch.",
    ),
    End.REQUEUED_SHUTDOWN: Row(
        JobState.QUEUED,
        "Job requeued: the emulator is shutting down (this run is not counted as an attempt)",
        counts_attempt=False,
    ),
    End.REQUEUED_WORKER_DIED: Row(
        JobState.QUEUED, "Job requeued: the simulation process {what} ({attempt}; it runs again)"
    ),
    End.REQUEUED_WORKER_LOST: Row(
        JobState.QUEUED,
        "Job requeued: its worker stopped while running it, no heartbeat since (attempt "
        "{attempts} of {max_attempts})",
    ),
}


@dataclass(frozen=True)
class Outcome:
    """A row of OUTCOMES with its blanks filled; `code` overrides the row's (program failures
    and injected outcomes carry their own)."""

    end: End
    fields: dict[str, Any] = field(default_factory=dict)
    code: int | None = None
    lines: tuple[str, ...] = ()
    """The program's own log lines (method, noise, sizes), written before the outcome's."""

    @property
    def state(self) -> JobState:
        return OUTCOMES[self.end].state

    @property
    def counts_attempt(self) -> bool:
        return OUTCOMES[self.end].counts_attempt

    def render(self) -> tuple[str, str, dict[str, Any]]:
        """(log message, log level, column values: reason, reason_code, reason_solution)."""
        row = OUTCOMES[self.end]
        values: dict[str, Any] = {}
        if row.reason is not None:
            values["reason"] = row.reason.format(**self.fields) or None
            values["reason_code"] = self.code if self.code is not None else row.code
            if row.solution is not None:
                values["reason_solution"] = row.solution.format(**self.fields) or None
        return row.log.format(**self.fields), row.level, values


def outcome(
    end: End, code: int | None = None, *, lines: Sequence[str] = (), **fields: Any
) -> Outcome:
    """`Outcome(end, fields, code, lines)`, spelled shortly at the call sites."""
    return Outcome(end, dict(fields), code, tuple(lines))
