"""Job operations with their domain rules. Routes call these; these call the store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Protocol

from emulator import programs
from emulator.config import Instance
from emulator.ids import new_id
from emulator.jobs.backends import BackendRegistry
from emulator.jobs.errors import (
    BackendNotFound,
    InvalidRequest,
    ProgramNotFound,
    UnknownBackendInRequest,
)
from emulator.jobs.model import (
    JobEvent,
    JobFilter,
    JobRequest,
    JobSnapshot,
    JobState,
    NewJob,
    isoformat,
)
from emulator.store.repository import Repository


class ExecutionHooks(Protocol):
    """What the service tells the execution layer; implemented by the worker pool."""

    def job_submitted(self) -> None: ...

    def job_cancelled(self, job_id: str) -> None: ...


class _NoExecution:
    def job_submitted(self) -> None:
        pass

    def job_cancelled(self, job_id: str) -> None:
        pass


class JobService:
    """Create, read, cancel, delete and annotate jobs of one instance at a time."""

    def __init__(
        self,
        repo: Repository,
        backends: BackendRegistry,
        hooks: ExecutionHooks | None = None,
        id_factory: Callable[[], str] = new_id,
    ) -> None:
        self.repo = repo
        self.backends = backends
        self.hooks: ExecutionHooks = hooks or _NoExecution()
        self._new_id = id_factory
        # QPY decoding in several request threads at once has crashed qiskit's native code
        # in a prototype; validation is cheap, so run it one at a time.
        self._validation_lock = threading.Lock()

    def create_job(self, instance: Instance, request: JobRequest) -> JobSnapshot:
        """Validate a submission fully, then store it Queued and wake a worker."""
        if request.program_id not in programs.PROGRAM_IDS:
            raise ProgramNotFound(f"Program not found: {request.program_id}")
        try:
            backend = self.backends.get(request.backend)
        except BackendNotFound:
            raise UnknownBackendInRequest(f"Backend not found: {request.backend}") from None
        with self._validation_lock:
            try:
                programs.validate_params(request.program_id, request.params, backend.snapshot)
            except programs.InvalidParams as exc:
                raise InvalidRequest(exc.field, exc.message) from exc
        job = self.repo.create_job(
            NewJob(
                id=self._new_id(),
                instance=instance.crn,
                program_id=request.program_id,
                backend=backend.name,
                params=json.dumps(request.params),
                log_level=request.log_level,
                session_id=request.session_id,
                tags=request.tags,
                cost=request.cost,
                private=request.private,
                runtime=request.runtime,
                calibration_id=request.calibration_id,
                caller=request.caller,
            )
        )
        self.hooks.job_submitted()
        return job

    def get_job(self, instance: Instance, job_id: str, with_params: bool = False) -> JobSnapshot:
        return self.repo.get_job(instance.crn, job_id, with_params=with_params)

    def list_jobs(self, instance: Instance, flt: JobFilter) -> tuple[list[JobSnapshot], int]:
        return self.repo.list_jobs(instance.crn, flt)

    def get_result(self, instance: Instance, job_id: str) -> tuple[JobSnapshot, str | None]:
        """The result text of a completed job, or the failure text of a failed one.

        IBM answers 2xx here for failed jobs too: the client reads this text to explain them.
        """
        job, result = self.repo.get_result(instance.crn, job_id)
        if job.state is JobState.COMPLETED or result is not None:
            return job, result
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            return job, failure_text(job)
        return job, None

    def cancel_job(self, instance: Instance, job_id: str) -> JobSnapshot:
        """Cancel a queued or running job; a running simulation is stopped, not awaited."""
        job = self.repo.cancel_job(instance.crn, job_id)
        self.hooks.job_cancelled(job_id)
        return job

    def delete_job(self, instance: Instance, job_id: str) -> None:
        self.repo.delete_job(instance.crn, job_id)

    def get_logs(self, instance: Instance, job_id: str) -> tuple[JobSnapshot, list[JobEvent]]:
        return self.repo.get_events(instance.crn, job_id)

    def replace_tags(self, instance: Instance, job_id: str, tags: tuple[str, ...]) -> None:
        self.repo.replace_tags(instance.crn, job_id, tags)

    def search_tags(self, instance: Instance, text: str) -> list[str]:
        return self.repo.search_tags(instance.crn, text)

    def queue_length(self, backend: str) -> int:
        return self.repo.queue_length(backend)

    def usage_seconds(self, instance: Instance) -> float:
        return self.repo.usage_seconds(instance.crn)


def failure_text(job: JobSnapshot) -> str:
    """What `/results` says about a job that did not complete."""
    if job.state is JobState.CANCELLED:
        return f"Job {job.id} was cancelled at {isoformat(job.finished_at)}." + (
            f" {job.reason}" if job.reason else ""
        )
    return f"Job {job.id} failed: {job.reason or 'unknown error'}"


def render_logs(events: list[JobEvent]) -> str:
    """Plain-text job log, one timestamped line per event."""
    return "".join(f"{isoformat(e.at)} {e.level}: {e.message}\n" for e in events)
