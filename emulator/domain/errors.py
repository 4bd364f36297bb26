"""Domain errors: they know nothing about HTTP. Each API maps them to a status and code once."""

from __future__ import annotations

from emulator.domain.jobs import JobState


class EmulatorError(Exception):
    """Base of every error a client may see."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticated(EmulatorError):
    """No bearer token, or one this emulator did not issue."""


class InstanceNotAccessible(EmulatorError):
    """The `Service-CRN` names an instance the caller may not use."""


class BackendNotFound(EmulatorError):
    """No backend of that name is served."""


class UnknownBackendInRequest(BackendNotFound):
    """A submission names a backend that is not served (a bad field, not a missing resource)."""


class ProgramNotFound(EmulatorError):
    """`program_id` is not one the emulator runs."""


class InvalidRequest(EmulatorError):
    """A client mistake in a request; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RequestTooLarge(EmulatorError):
    """A request body over the configured limit."""


class BackendDataNotFound(EmulatorError):
    """The backend exists but has no data for what was asked (e.g. properties before a date)."""


class ResultsAlreadyRead(EmulatorError):
    """A private job's results, read once already (IBM deletes them on the first read)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"The results of private job {job_id} were read already: a private job's results "
            "can be read once."
        )


class JobNotFound(EmulatorError):
    """No job of that id in the caller's instance (or it was deleted)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job not found. Job ID: {job_id}")
        self.job_id = job_id


class JobStateConflict(EmulatorError):
    """The job is not in a state that allows the operation."""

    def __init__(self, job_id: str, state: JobState, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.state = state


class JobNotCancellable(JobStateConflict):
    """Cancel on a job that already ended."""

    def __init__(self, job_id: str, state: JobState) -> None:
        super().__init__(
            job_id, state, f"Job is in non cancellable status {state.value}. Job ID: {job_id}"
        )


class JobNotTerminal(JobStateConflict):
    """Delete on a job that has not ended."""

    def __init__(self, job_id: str, state: JobState) -> None:
        super().__init__(
            job_id,
            state,
            f"Deleting a job in a non-terminal state ({state.value}) is not possible. "
            f"Job ID: {job_id}",
        )


class TooManyTags(InvalidRequest):
    """IBM allows at most 8 tags per job."""


class MalformedBody(InvalidRequest):
    """The body is not parseable at all (as opposed to parseable but invalid)."""


class RequestTimeout(EmulatorError):
    """The request body arrived too slowly."""


class DuplicateJobId(EmulatorError):
    """A Direct Access client reused a job id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job with duplicate id already exists. Job ID: {job_id}")


class BackendReserved(EmulatorError):
    """An active reservation of the backend excludes the caller."""

    def __init__(self, backend: str) -> None:
        super().__init__(
            "The requested backend is currently reserved and cannot run jobs outside of "
            f"the reservation. Backend: {backend}"
        )


class LanesFull(EmulatorError):
    """Every execution lane of the backend is taken."""

    def __init__(self, backend: str, limit: int) -> None:
        super().__init__(
            f"The maximum number of execution lanes for backend {backend} has been reached "
            f"({limit})."
        )


class SessionNotFound(EmulatorError):
    """No session of that id in the caller's instance."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session not found. Session ID: {session_id}")
        self.session_id = session_id


class UnknownSessionInRequest(InvalidRequest):
    """A submission names a session that does not exist (a bad field, not a missing resource)."""

    def __init__(self, session_id: str) -> None:
        super().__init__("session_id", f"no session {session_id} in this instance")


class SessionClosed(EmulatorError):
    """A job for a session that is closed or no longer accepts jobs."""


class SessionBackendMismatch(EmulatorError):
    """A job for a session that runs on another backend."""


class BackendUnavailable(EmulatorError):
    """The backend is paused or offline (set through the control plane)."""


class UsageLimitReached(EmulatorError):
    """The instance has used its execution time for the period (refuse mode)."""


class UsageExceedsLimit(EmulatorError):
    """A new instance limit below what the instance has already used this period."""


class TooManyRequests(EmulatorError):
    """A limit on submissions was reached; `retry_after` says when to try again (seconds)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class PendingJobsLimit(TooManyRequests):
    """The instance already has its maximum of Queued + Running jobs."""


class SubmissionRateLimited(TooManyRequests):
    """The instance submitted its maximum of jobs in the last minute."""
