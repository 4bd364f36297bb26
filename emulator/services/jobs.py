"""Job operations with their domain rules. Routes call these; these call the store."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

from emulator import simulation
from emulator.domain.admission import (
    InstanceLimits,
    LaneLimit,
    Reservation,
    UsageReport,
    active_reservation,
    check_direct_access_admission,
    check_instance_limits,
    usage_period,
)
from emulator.domain.analytics import UsageRow
from emulator.domain.backends import BackendRegistry
from emulator.domain.controls import BackendState
from emulator.domain.errors import (
    BackendNotFound,
    BackendReserved,
    BackendUnavailable,
    InvalidRequest,
    ProgramNotFound,
    UnknownBackendInRequest,
)
from emulator.domain.ids import new_id, subscription_id
from emulator.domain.jobs import (
    DirectAccessJobRequest,
    JobEvent,
    JobFilter,
    JobRequest,
    JobSnapshot,
    JobState,
    NewJob,
    Owner,
    isoformat,
    utcnow,
)
from emulator.domain.sessions import check_session_admits
from emulator.domain.storage_urls import StoragePolicy
from emulator.domain.workloads import WorkloadFilter, WorkloadPage
from emulator.services.hooks import ExecutionHooks, NoExecution
from emulator.services.watch import JobWatch
from emulator.store.controls import ControlStore
from emulator.store.jobs import Repository
from emulator.store.sessions import SessionStore
from emulator.store.usage import instance_limits_in
from emulator.store.workloads import list_workloads


class JobService:
    """Create, read, cancel, delete and annotate the jobs of one owner at a time."""

    def __init__(
        self,
        repo: Repository,
        backends: BackendRegistry,
        hooks: ExecutionHooks | None = None,
        id_factory: Callable[[], str] = new_id,
        *,
        lanes: LaneLimit | None = None,
        reservations: tuple[Reservation, ...] = (),
        sessions: SessionStore | None = None,
        limits: InstanceLimits | None = None,
        controls: ControlStore | None = None,
        max_decoded_bytes: int = simulation.DEFAULT_BUDGET,
        storage_policy: StoragePolicy | None = None,
        watch: JobWatch | None = None,
        shared_store: bool = False,
    ) -> None:
        self.watch = watch or JobWatch()
        self.shared_store = shared_store
        self.storage_policy = storage_policy
        self.repo = repo
        self.max_decoded_bytes = max_decoded_bytes
        self.controls = controls
        self.sessions = sessions
        self.limits = limits or InstanceLimits()
        self.backends = backends
        self.lanes = lanes or LaneLimit(5)
        self._configured_reservations = reservations
        self.hooks: ExecutionHooks = hooks or NoExecution()
        self._new_id = id_factory
        self._polls = PollCounter()

    def create_job(self, owner: Owner, request: JobRequest) -> JobSnapshot:
        """Validate a submission fully, then store it Queued and wake a worker."""
        if request.program_id not in simulation.PROGRAM_IDS:
            raise ProgramNotFound(f"Program not found: {request.program_id}")
        try:
            backend = self.backends.get(request.backend)
        except BackendNotFound:
            raise UnknownBackendInRequest(f"Backend not found: {request.backend}") from None
        self._require_online(backend.name)
        if request.calibration_id not in (None, backend.snapshot.calibration_id):
            raise InvalidRequest(
                "calibration_id",
                f"{backend.name} has no calibration {request.calibration_id} (the emulator "
                f"serves one: {backend.snapshot.calibration_id})",
            )
        # No lock around validation: submissions validate in parallel request threads, so
        # one big payload delays no other (only NPY headers share a lock: simulation.npy).
        try:
            simulation.validate_params(
                request.program_id, request.params, backend.snapshot, self.max_decoded_bytes
            )
        except simulation.InvalidParams as exc:
            raise InvalidRequest(exc.field, exc.message) from exc
        job = store_runtime_job(
            self.repo,
            NewJob(
                id=self._new_id(),
                instance=owner.instance,
                api=owner.api,
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
                time_limit=request.cost,
            ),
            self.limits,
            self.sessions,
            self.controls,
        )
        self.hooks.job_submitted()
        return job

    def create_direct_access_job(
        self, owner: Owner, request: DirectAccessJobRequest
    ) -> JobSnapshot:
        """Admit a Direct Access job: backend, then reservation, then id, then lanes.

        The input is not read here: the worker fetches it from storage when the job runs.
        """
        if self.storage_policy is not None:
            for name, entry in request.storage.items():
                self.storage_policy.check(entry["presigned_url"], f"storage.{name}.presigned_url")
        backend = self.backends.get(request.backend)
        if backend.mock:
            raise BackendNotFound(f"Backend {request.backend} not found.")
        self._require_online(backend.name)
        if self.reserved_against(backend.name, owner.instance):
            raise BackendReserved(backend.name)
        job = store_direct_access_job(
            self.repo,
            NewJob(
                id=request.id,
                instance=owner.instance,
                api=owner.api,
                program_id=request.program_id,
                backend=backend.name,
                params="",
                log_level=request.log_level,
                storage=json.dumps(request.storage),
                time_limit=request.timeout_secs,
            ),
            self.lanes,
            self.controls,
        )
        self.hooks.job_submitted()
        return job

    @property
    def reservations(self) -> tuple[Reservation, ...]:
        """Reservations from the settings, then those made through the control plane."""
        made = [r for _, r in self.controls.reservations()] if self.controls else []
        return (*self._configured_reservations, *made)

    def backend_state(self, backend: str) -> BackendState:
        """The backend's availability: online unless the control plane says otherwise."""
        return self.controls.backend_state(backend) if self.controls else BackendState()

    def backend_status(self, backend: str) -> tuple[int, BackendState]:
        """Queue length and availability of a backend: one thread hop and one read for a
        status request."""
        if self.controls is None:
            return self.queue_length(backend), BackendState()
        return self.controls.backend_status(backend)

    def backends_overview(self) -> tuple[dict[str, int], dict[str, BackendState]]:
        """Queue lengths and availability of every backend, for the backend lists."""
        return self.queue_lengths(), self.backend_states()

    def backend_states(self) -> dict[str, BackendState]:
        """Every backend's availability at once (one read), for the backend lists."""
        stored = self.controls.backend_states() if self.controls else {}
        return {b.name: stored.get(b.name, BackendState()) for b in self.backends.all()}

    def locked_backends(self, instance: str) -> set[str]:
        """The backends an active reservation holds against `instance` (one read)."""
        reservations, now = self.reservations, utcnow()
        return {
            b.name
            for b in self.backends.all()
            if (r := active_reservation(reservations, b.name, now)) is not None
            and r.excludes(instance)
        }

    def _require_online(self, backend: str) -> None:
        state = self.backend_state(backend)
        if not state.accepts_jobs:
            raise BackendUnavailable(
                f"Backend {backend} is {state.status.value}"
                + (f": {state.message}" if state.message else "")
                + "; it does not accept jobs."
            )

    def poll_job(self, owner: Owner, job_id: str, with_params: bool = False) -> JobSnapshot:
        """A client's status poll: a read. A job held by manual progression until N polls is
        released by the poll that makes N — on an explicit write path, not by the read."""
        job = self.repo.get_job(owner, job_id, with_params=with_params)
        if job.held and job.state is JobState.QUEUED and job.release_after_polls:
            if self._polls.note(job_id) >= job.release_after_polls:
                self._polls.forget(job_id)
                if self.repo.release(job_id, message="Job released after its status polls"):
                    self.hooks.job_submitted()
                    job = self.repo.get_job(owner, job_id, with_params=with_params)
        return job

    async def job_status(
        self,
        owner: Owner,
        job_id: str,
        with_params: bool,
        hold_seconds: float,
        abandoned: Callable[[], Awaitable[object]] | None = None,
    ) -> JobSnapshot:
        """A client's status poll, held up to `hold_seconds` until the job is final.

        Most jobs end within milliseconds: answering the poll with the outcome, not "Queued"
        or "Running", saves the client its sleep between polls. Only where something can end
        the job meanwhile: this node's workers, or worker nodes on a shared store
        (`--database-url`). A held job is answered at once (waiting cannot end it).
        """

        if not with_params and (cached := self.repo.cached_job(owner, job_id)) is not None:
            return cached  # final, from memory: no thread, no store, nothing to hold for

        async def poll() -> JobSnapshot:
            return await asyncio.to_thread(self.poll_job, owner, job_id, with_params)

        async def read() -> JobSnapshot:
            return await asyncio.to_thread(self.get_job, owner, job_id, with_params)

        if hold_seconds <= 0 or not (self.hooks.workers or self.shared_store):
            return await poll()
        return await self.watch.wait_until_final(
            job_id, read, _answer_now, hold_seconds, first=poll, abandoned=abandoned
        )

    def reservation_of(self, backend: str) -> Reservation | None:
        """The reservation holding `backend` now, if any."""
        return active_reservation(self.reservations, backend, utcnow())

    def reserved_against(self, backend: str, instance: str) -> bool:
        reservation = self.reservation_of(backend)
        return reservation is not None and reservation.excludes(instance)

    def get_job(self, owner: Owner, job_id: str, with_params: bool = False) -> JobSnapshot:
        return self.repo.get_job(owner, job_id, with_params=with_params)

    def list_jobs(
        self, owner: Owner, flt: JobFilter, with_params: bool = False
    ) -> tuple[list[JobSnapshot], int]:
        return self.repo.list_jobs(owner, flt, with_params)

    def list_workloads(self, owner: Owner, flt: WorkloadFilter) -> WorkloadPage:
        """The owner's standalone jobs and sessions as one paged list (`GET /workloads`)."""
        return list_workloads(self.repo.engine, owner, flt)

    def get_result(self, owner: Owner, job_id: str) -> tuple[JobSnapshot, str | None]:
        """The result text of a completed job, or the failure text of a failed one.

        IBM answers 2xx here for failed jobs too: the client reads this text to explain them.
        """
        job, result = self.repo.get_result(owner, job_id)
        if job.private and job.state is JobState.COMPLETED:
            # IBM deletes a private job's results as they are read: this read is a write.
            job, result = self.repo.take_result(owner, job_id)
        if job.state is JobState.COMPLETED or result is not None:
            return job, result
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            return job, failure_text(job)
        return job, None

    def cancel_job(self, owner: Owner, job_id: str) -> JobSnapshot:
        """Cancel a queued or running job; a running simulation is stopped, not awaited."""
        job = self.repo.cancel_job(owner, job_id)
        self.hooks.job_cancelled(job_id)
        return job

    def delete_job(self, owner: Owner, job_id: str) -> None:
        self.repo.delete_job(owner, job_id)

    def get_logs(self, owner: Owner, job_id: str) -> tuple[JobSnapshot, list[JobEvent]]:
        return self.repo.get_events(owner, job_id)

    def replace_tags(self, owner: Owner, job_id: str, tags: tuple[str, ...]) -> None:
        self.repo.replace_tags(owner, job_id, tags)

    def search_tags(self, owner: Owner, text: str) -> list[str]:
        return self.repo.search_tags(owner, text)

    def queue_length(self, backend: str) -> int:
        return self.repo.queue_length(backend)

    def queue_lengths(self) -> dict[str, int]:
        """Queued jobs per backend (backends with none are absent)."""
        return self.repo.queue_lengths()

    def instance_limit(self, owner: Owner) -> float | None:
        """The instance's usage limit in force: its own (set through the API), else the
        server's."""
        return self.instance_limits([owner.instance])[owner.instance]

    def usage_rows(
        self,
        owner: Owner,
        plan: str,
        start: datetime,
        end: datetime,
        backends: list[str] | None = None,
    ) -> list[UsageRow]:
        """The instance's jobs that ended in [start, end), for `GET /analytics/*`."""
        subscription = subscription_id(plan)
        return [
            UsageRow(instance, backend, plan, subscription, mode, session, seconds, *times)
            for instance, backend, mode, session, seconds, *times in self.repo.usage.ended_jobs(
                [owner.instance], start, end, backends
            )
        ]

    def instance_limits(self, instances: list[str]) -> dict[str, float | None]:
        """The usage limit in force of each instance (CRN): one read of their own limits."""
        own = self.repo.instances.limits(instances[0] if len(instances) == 1 else None)
        usage = self.limits.usage.with_limits(own)
        return {crn: usage.limit_for(crn) for crn in instances}

    def replace_instance_limit(self, owner: Owner, seconds: float | None) -> None:
        """`PUT /instances/configuration`: None removes the instance's own limit."""
        self.repo.instances.replace_limit(owner.instance, seconds, usage_period(utcnow())[0])

    def usage(self, owner: Owner) -> UsageReport:
        """The instance's execution seconds this period, against its limit if it has one."""
        start, end = usage_period(utcnow())
        return UsageReport(
            consumed=self.repo.usage.seconds(owner.instance, since=start),
            limit=self.instance_limit(owner),
            period_start=start,
            period_end=end,
        )


class PollCounter:
    """Status polls per held job, in this process's memory (a poll is a read: it writes
    nothing). Bounded: the oldest counts are dropped past `limit` jobs."""

    def __init__(self, limit: int = 10_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def note(self, job_id: str) -> int:
        with self._lock:
            count = self._counts.pop(job_id, 0) + 1
            self._counts[job_id] = count
            while len(self._counts) > self._limit:
                self._counts.popitem(last=False)
            return count

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._counts.pop(job_id, None)


def _answer_now(job: JobSnapshot) -> bool:
    """A final job, or a held one (waiting cannot end it), is answered without a hold."""
    return job.state.terminal or job.held


# -- units of work: one transaction that reads, decides with the domain's rules, inserts ------


def store_runtime_job(
    repo: Repository,
    job: NewJob,
    limits: InstanceLimits,
    sessions: SessionStore | None = None,
    controls: ControlStore | None = None,
) -> JobSnapshot:
    """Admit and store a Runtime job in one transaction: instance limits (first: a client over
    them learns that, whatever else is wrong), then its session, then the control plane's
    rules (consumed only by a job that is stored), then the insert. Concurrent submissions
    therefore cannot pass a limit together or slip into a session that is closing."""
    owner, now = job.owner, utcnow()
    with repo.tx.begin() as conn:
        limits = limits.with_usage_limits(instance_limits_in(conn, owner.instance))
        if limits.active or job.session_id:
            repo.lock(conn, f"instance:{owner.instance}")
        if limits.active:
            activity = repo.instance_activity(conn, owner, limits, now)
            check_instance_limits(activity, limits, owner.instance, now)
        if job.session_id and sessions is not None:
            session = sessions.for_submission(conn, owner.instance, job.session_id)
            check_session_admits(session, job.session_id, job.backend)
        job, extra = controls.job_controls(conn, job) if controls else (job, {})
        return repo.insert_job(conn, job, extra)


def store_direct_access_job(
    repo: Repository,
    job: NewJob,
    lanes: LaneLimit,
    controls: ControlStore | None = None,
) -> JobSnapshot:
    """Admit and store a Direct Access job in one transaction, serialised per backend: the id
    must be new, then a lane free; concurrent submissions cannot overfill a backend."""
    with repo.tx.begin() as conn:
        repo.lock(conn, f"lanes:{job.backend}")
        check_direct_access_admission(
            job.id,
            repo.job_exists(conn, job.id),
            job.backend,
            repo.lanes_held(conn, job.backend, job.api, lanes),
            lanes,
        )
        job, extra = controls.job_controls(conn, job) if controls else (job, {})
        return repo.insert_job(conn, job, extra)


def failure_text(job: JobSnapshot) -> str:
    """What `/results` says about a job that did not complete."""
    if job.state is JobState.CANCELLED:
        return f"Job {job.id} was cancelled at {isoformat(job.finished_at)}." + (
            f" {job.reason}" if job.reason else ""
        )
    return f"Job {job.id} failed: {job.reason or 'unknown error'}"
