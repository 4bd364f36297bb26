"""The supervisor: one slot thread per worker process, claiming jobs from the store.

A slot owns a long-lived child process (qiskit and Aer imported once, caches kept warm),
claims a Queued job atomically, hands it to the child and waits — for the outcome, for a
cancel (then it kills the child and starts a fresh one), for the job's time limit, or for
the child to die. Threads only wait and write rows; simulation never runs in the server
process and never on the event loop.

A run that ends without an answer from the child (it was killed or crashed) is retried while
the job has attempts left (`max_attempts`); a graceful shutdown requeues its running jobs
without counting the attempt.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from emulator.domain.admission import UsageAction, UsageLimits, usage_period
from emulator.domain.backends import BackendRegistry
from emulator.domain.controls import InjectedOutcome
from emulator.domain.errors import BackendNotFound, JobNotFound
from emulator.domain.ids import new_id
from emulator.domain.jobs import Api, JobSnapshot, JobState, Lease, utcnow
from emulator.domain.methods import MethodSetting
from emulator.domain.outcomes import End, Outcome, outcome
from emulator.execution.delivery import render_direct_access_logs
from emulator.execution.preload import FORK_SERVER_MODULE, PRELOAD_BACKENDS
from emulator.execution.storage import StorageError, fetch_text, put_text
from emulator.execution.worker import (
    Completed,
    Failed,
    Ready,
    Ticket,
    child_main,
    memory_limit_mb,
)
from emulator.store.cache import ALL
from emulator.store.jobs import Repository

log = logging.getLogger("emulator.workers")

STILL_MINE_S = 0.5
"""How often a slot checks, with its job's own heartbeat, that the job is still Running on it:
a cancel (or a takeover) through another process reaches the simulation within this."""
STALE_AFTER_S = 10.0
"""A Running job whose heartbeat is older than this (`--worker-stale-seconds`) has lost its
worker, whatever node ran it: the sweep (every fifth of it, on every node, which also beats
the node's own running jobs) requeues it, or fails it past its attempts."""
IDLE_POLL_S = 1.0  # picks up jobs queued by other processes or requeued by recovery
# How a process that exceeded its memory ends when the allocator cannot report it: killed
# (the kernel's OOM killer), or aborted or faulting in native code (std::bad_alloc, NULL).
MEMORY_SIGNALS = frozenset({signal.SIGKILL, signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS})


class WorkerPool:
    """N slots; implements the service's ExecutionHooks."""

    def __init__(
        self,
        repo: Repository,
        backends: BackendRegistry,
        size: int,
        *,
        max_attempts: int = 2,
        usage_limits: UsageLimits | None = None,
        memory_mb: int = 0,
        max_decoded_bytes: int = 200 * 1024 * 1024,
        max_input_bytes: int = 256 * 1024 * 1024,
        stale_after: float = STALE_AFTER_S,
        methods: MethodSetting | None = None,
        max_job_seconds: int = 0,
        device: str = "CPU",
    ) -> None:
        self.repo = repo
        self.device = device
        self.methods = methods or MethodSetting()
        self.max_job_seconds = max_job_seconds
        self.usage_limits = usage_limits or UsageLimits()
        self.backends = backends
        self.max_attempts = max_attempts
        # What each job may use: the setting, or by default the machine's share per worker.
        self.memory_mb = memory_limit_mb(memory_mb, size)
        self.max_decoded_bytes = max_decoded_bytes
        self.max_input_bytes = max_input_bytes
        self._footprint_logged = threading.Event()
        self.pool_id = new_id(8)
        self._wakeup = threading.Condition()
        self._pending_wakeups = 0
        self._stopping = threading.Event()
        self._ctx = _worker_context(self.backends.specs())
        self.slots = [Slot(self, f"{self.pool_id}-w{i}") for i in range(size)]
        self.stale_after = stale_after
        self._sweeper = threading.Thread(
            target=self._sweep_forever, name=f"sweep-{self.pool_id}", daemon=True
        )

    # -- ExecutionHooks ---------------------------------------------------------------------

    def job_submitted(self) -> None:
        with self._wakeup:
            self._pending_wakeups += 1
            self._wakeup.notify()

    def job_cancelled(self, job_id: str) -> None:
        for slot in self.slots:
            slot.interrupt_if_running(job_id)

    def job_changed(self, job_id: str, state: str) -> None:
        """Another process changed a job (the store's change channel): a queued job wakes an
        idle slot; a slot running it checks at once whether the run is still its own (a
        cancel through an API node stops the simulation here without waiting for the next
        check)."""
        if state == JobState.QUEUED.value:
            self.job_submitted()
        if state != JobState.RUNNING.value:
            for slot in self.slots:
                slot.recheck_if_running(job_id)

    def held_instances(self) -> set[str]:
        """Instances whose jobs must stay Queued: out of usage time in hold mode."""
        usage = self.usage_limits
        if usage.action is not UsageAction.HOLD:
            return set()
        # The ledger adds the instances' own limits (PUT /instances/configuration).
        return self.repo.usage.exhausted(usage.seconds, usage_period(utcnow())[0])

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        # Nothing here touches a Running job: one that lost its worker (this node's previous
        # run, or another node) is recovered by the sweep once its heartbeat is stale.
        self._sweeper.start()
        if self.slots:
            log.info(
                "worker memory limit: %s per simulation process",
                f"{self.memory_mb} MiB" if self.memory_mb else "none (machine memory unknown)",
            )
        for slot in self.slots:
            slot.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._wakeup:
            self._wakeup.notify_all()
        for slot in self.slots:
            slot.interrupt()
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            slot.join(max(0.0, deadline - time.monotonic()))
        if self._sweeper.is_alive():
            self._sweeper.join(max(0.0, deadline - time.monotonic()))

    def sweep(self) -> None:
        """One beat for every job this node runs, then recovery of stale jobs (any node's)."""
        self.repo.beat([slot.worker_id for slot in self.slots])
        for job in self.repo.recover_interrupted(
            self.max_attempts, stale_after=timedelta(seconds=self.stale_after)
        ):
            log.warning("job %s lost its worker (no heartbeat): now %s", job.id, job.state)
            if job.state.value == "queued":
                self.job_submitted()

    def _sweep_forever(self) -> None:
        while not self._stopping.wait(self.stale_after / 5):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - e.g. the database briefly locked: next beat
                log.exception("heartbeat sweep failed")

    @property
    def workers(self) -> int:
        return len(self.slots)

    @property
    def ready_workers(self) -> int:
        return sum(1 for s in self.slots if s.ready)

    def wait_for_work(self, timeout: float) -> None:
        with self._wakeup:
            if self._pending_wakeups == 0 and not self._stopping.is_set():
                self._wakeup.wait(timeout)
            self._pending_wakeups = max(0, self._pending_wakeups - 1)

    def note_ready(self, ready: object) -> None:
        """Log, once, what a warmed-up worker maps and the address-space limit it applied."""
        if not isinstance(ready, Ready) or self._footprint_logged.is_set():
            return
        self._footprint_logged.set()
        log.info(
            "a warmed-up simulation process maps %d MiB of address space; its limit: %s",
            ready.footprint_mb,
            f"{ready.address_limit_mb} MiB" if ready.address_limit_mb else "none",
        )

    def new_process(self) -> tuple[BaseProcess, Connection]:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=child_main,
            args=(child, self.backends.specs(), self.memory_mb, os.getpid(), self.device),
            name="emulator-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return process, parent


def _worker_context(specs: list[tuple[str, str]]) -> BaseContext:
    """Where worker processes come from: forked from a fork server that imported the simulator
    and built the backends' Targets once (`preload.py`), else (no fork server on this platform)
    spawned, each importing everything itself. Never a plain fork of the server: its threads
    (event loop, slots, store) may hold locks at the moment of the fork."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Read once, when the (per-process) fork server starts: the first pool's backends are
    # warmed; a worker still warms any other backend itself.
    os.environ.setdefault(PRELOAD_BACKENDS, json.dumps(specs))
    context.set_forkserver_preload([FORK_SERVER_MODULE])
    return context


class Slot(threading.Thread):
    """Supervises one worker process."""

    def __init__(self, pool: WorkerPool, worker_id: str) -> None:
        super().__init__(name=f"slot-{worker_id}", daemon=True)
        self.pool = pool
        self.worker_id = worker_id
        self.ready = False
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._current: str | None = None
        self._lock = threading.Lock()
        self._interrupt_recv, self._interrupt_send = multiprocessing.Pipe(duplex=False)
        self._kill_current = False
        self._recheck = False

    # -- control from other threads ----------------------------------------------------------

    def interrupt_if_running(self, job_id: str) -> None:
        with self._lock:
            if self._current == job_id:
                self._kill_current = True
                self._interrupt_send.send(b"x")

    def interrupt(self) -> None:
        with self._lock:
            self._interrupt_send.send(b"x")

    def recheck_if_running(self, job_id: str) -> None:
        """Check the running job's lease now rather than at the next beat (`ALL`: any job)."""
        with self._lock:
            if self._current is not None and job_id in (self._current, ALL):
                self._recheck = True
                self._interrupt_send.send(b"x")

    def _take_recheck(self) -> bool:
        with self._lock:
            asked, self._recheck = self._recheck, False
        return asked

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        stopping = self.pool._stopping
        try:
            while not stopping.is_set():
                if not self._ensure_child():
                    continue
                try:
                    job = self.pool.repo.claim_next(self.worker_id, self.pool.held_instances())
                except Exception:  # noqa: BLE001 - e.g. the database briefly unavailable
                    log.exception("worker slot %s could not claim a job", self.worker_id)
                    self.pool.wait_for_work(IDLE_POLL_S)
                    continue
                if job is None:
                    self.pool.wait_for_work(IDLE_POLL_S)
                    continue
                try:
                    self._run(job)
                except Exception as exc:  # noqa: BLE001 - one job's defect must not stop the slot
                    log.exception(
                        "worker slot %s failed while handling job %s", self.worker_id, job.id
                    )
                    self._abandon(job, exc)
        finally:
            self._shutdown_child()

    def _ensure_child(self) -> bool:
        if self._process is not None and self._process.is_alive():
            return True
        self.ready = False
        self._process, self._conn = self.pool.new_process()
        # Wait for the child's imports to finish, but stay responsive to shutdown.
        while not self.pool._stopping.is_set():
            ready = wait([self._conn, self._process.sentinel, self._interrupt_recv], timeout=1.0)
            self._drain_interrupts()
            if self._conn in ready:
                try:
                    self.pool.note_ready(self._conn.recv())
                except (EOFError, OSError):
                    break
                self.ready = True
                return True
            if self._process.sentinel in ready:
                break
        self._shutdown_child()
        if not self.pool._stopping.is_set():
            log.error("worker process %s failed to start; retrying", self.worker_id)
            time.sleep(1.0)
        return False

    def _drain_interrupts(self) -> None:
        while self._interrupt_recv.poll():
            self._interrupt_recv.recv()

    def _run(self, job: JobSnapshot) -> None:
        # From here on a cancel of this job reaches this slot (see interrupt_if_running).
        with self._lock:
            self._current = job.id
            self._kill_current = False
            self._recheck = False
        try:
            ended = self._prepare_and_simulate(job)
        finally:
            with self._lock:
                self._current = None
        self._finish(job, ended)

    def _prepare_and_simulate(self, job: JobSnapshot) -> Ended:
        """Fetch the input, hand the job to the child and wait: the job's outcome."""
        assert self._process is not None and self._conn is not None
        try:
            backend = self.pool.backends.get(job.backend)
        except BackendNotFound:
            # Possible after a restart with a different backend list: fail it, keep serving.
            return outcome(End.BACKEND_GONE, backend=job.backend)
        direct = job.api is Api.DIRECT_ACCESS
        params = job.params or ""
        if direct:
            try:
                params = fetch_text(
                    _storage(job)["input"]["presigned_url"], "job input", self.pool.max_input_bytes
                )
            except StorageError as exc:
                return outcome(End.STORAGE_FAILED, error=str(exc))
            self.pool.repo.set_params(job.id, _lease(job), params)
        # A cancel that came while the input was fetched (or just after the claim) must not
        # let the simulation start: the job is no longer Running in the store.
        if self._kill_current or not self.pool.repo.heartbeat(_lease(job), job.id):
            self._drain_interrupts()
            return CANCELLED
        deadline = _deadline(job)
        if job.outcome is not None:
            # An injected outcome: no simulation, just the (optional) run time, then the end.
            injected = InjectedOutcome.from_json(json.loads(job.outcome))
            interrupted = self._pause(job, job.min_run_seconds or 0.0, deadline)
            if interrupted is not None:
                return interrupted
            if injected.state is JobState.CANCELLED:
                return outcome(
                    End.INJECTED_CANCEL,
                    injected.reason_code,
                    reason=injected.reason or "",
                    why=injected.reason or "injected through the control plane",
                )
            return outcome(
                End.INJECTED_FAILURE,
                injected.reason_code,
                reason=injected.reason or "The job failed (injected through the control plane).",
            )
        ticket = Ticket(
            job.id,
            job.program_id,
            params,
            backend.name,
            backend.snapshot.source,
            direct,
            default_seed=job.seed,
            max_decoded_bytes=self.pool.max_decoded_bytes,
            method=self.pool.methods.for_backend(backend.name),
            max_job_seconds=self.pool.max_job_seconds,
            dry_run=backend.mock,
        )
        try:
            self._conn.send(ticket)
        except OSError:  # the child died since it was last seen alive (killed, crashed)
            return self._crashed()
        ended = self._await_outcome(job, deadline)
        if isinstance(ended, Completed) and job.min_run_seconds:
            # Timed progression or a delayed outcome: Running for at least this long.
            interrupted = self._pause(job, job.min_run_seconds, deadline)
            if interrupted is not None:
                return interrupted
        return ended

    def _pause(self, job: JobSnapshot, seconds: float, deadline: float | None) -> Outcome | None:
        """Stay Running until `seconds` after the job started; why not, if interrupted."""
        started = job.running_at or utcnow()
        remaining = seconds - (utcnow() - started).total_seconds()
        until = time.monotonic() + max(0.0, remaining)
        next_beat = time.monotonic() + STILL_MINE_S
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return _ran_too_long(job)
            if now >= until:
                return None
            limit = min(until, next_beat, deadline if deadline is not None else until)
            if wait([self._interrupt_recv], max(0.0, limit - now)):
                self._drain_interrupts()
                if self._kill_current:
                    return CANCELLED
                if self.pool._stopping.is_set():
                    return STOPPING
                if self._take_recheck():
                    next_beat = 0.0
            if time.monotonic() >= next_beat:
                if not self.pool.repo.heartbeat(_lease(job), job.id):
                    return CANCELLED  # cancelled (or taken over) through another process
                next_beat = time.monotonic() + STILL_MINE_S

    def _abandon(self, job: JobSnapshot, exc: Exception) -> None:
        """Fail a job whose handling raised, so it is never left Running."""
        try:
            self._record(job, outcome(End.EMULATOR_ERROR, error=f"{type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001 - the store itself failing: recovery will requeue it
            log.exception("could not mark job %s failed", job.id)

    def _finish(self, job: JobSnapshot, ended: Ended) -> None:
        if isinstance(ended, Crashed):
            # Killed along with the server (a signal to its process group): not the job's fault.
            ended = STOPPING if self.pool._stopping.is_set() else self._crash_outcome(job, ended)
        if job.api is Api.DIRECT_ACCESS and (
            isinstance(ended, Completed) or ended.state.terminal
        ):
            ended = self._deliver(job, ended)
        self._record(job, ended)

    def _deliver(self, job: JobSnapshot, ended: Completed | Outcome) -> Completed | Outcome:
        """PUT a Direct Access job's results (on success) and logs (always) to its storage.

        A write that fails turns a completed job into a failed one, as on IBM's service.
        """
        storage = _storage(job)
        if isinstance(ended, Completed) and "results" in storage:
            try:
                put_text(storage["results"]["presigned_url"], ended.result, "job results")
            except StorageError as exc:
                ended = _storage_failure(exc)
        if "logs" in storage:
            try:
                _, events = self.pool.repo.get_events(job.owner, job.id)
            except JobNotFound:
                return ended  # deleted by its client meanwhile: nothing left to report to
            text = render_direct_access_logs(events, _outcome_lines(ended, job), job.log_level)
            try:
                put_text(storage["logs"]["presigned_url"], text, "job logs", "text/plain")
            except StorageError as exc:
                if isinstance(ended, Completed):
                    ended = _storage_failure(exc)
        return ended

    def _await_outcome(self, job: JobSnapshot, deadline: float | None) -> Ended:
        """The child's answer, or why there is none: cancelled, timeout, crashed, stopping."""
        assert self._process is not None and self._conn is not None
        next_beat = time.monotonic() + STILL_MINE_S
        while True:
            timeout = next_beat - time.monotonic()
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
            ready = wait(
                [self._conn, self._process.sentinel, self._interrupt_recv], max(0.0, timeout)
            )
            if self._conn in ready:
                try:
                    answer: Completed | Failed = self._conn.recv()
                except (EOFError, OSError):
                    return self._crashed()
                if isinstance(answer, Failed):
                    return outcome(
                        End.PROGRAM_FAILED,
                        answer.reason_code,
                        lines=answer.log,
                        reason=answer.reason,
                        solution=answer.solution,
                        detail=answer.detail,
                    )
                return answer
            if self._interrupt_recv in ready:
                self._drain_interrupts()
                if self._kill_current:
                    self._kill_child()
                    return CANCELLED
                if self.pool._stopping.is_set():
                    self._kill_child()
                    return STOPPING
                if self._take_recheck():
                    next_beat = 0.0
            if self._process.sentinel in ready:
                return self._crashed()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self._kill_child()
                return _ran_too_long(job)
            if now >= next_beat:
                if not self.pool.repo.heartbeat(_lease(job), job.id):
                    # Cancelled (or taken over) through another process: stop the simulation.
                    self._kill_child()
                    return CANCELLED
                next_beat = now + STILL_MINE_S

    def _record(self, job: JobSnapshot, ended: Completed | Outcome) -> None:
        """Write how the run ended: one lookup in the outcome table (domain.outcomes)."""
        if isinstance(ended, Completed):
            self.pool.repo.complete_job(
                job.id, _lease(job), ended.result, ended.log, ended.quantum_seconds
            )
        elif ended.state is JobState.QUEUED:
            self.pool.repo.requeue_outcome(job.id, ended, held_by=_lease(job))
        else:
            # A job cancelled by its client is Cancelled already: the guarded UPDATE is a no-op.
            self.pool.repo.transition(job.id, ended, held_by=_lease(job))

    def _crash_outcome(self, job: JobSnapshot, crash: Crashed) -> Outcome:
        """Requeue a job whose worker died while it has attempts left; fail it after the last."""
        what = crash.describe(self.pool.memory_mb)
        attempt = f"attempt {job.attempts} of {self.pool.max_attempts}"
        if job.attempts < self.pool.max_attempts:
            log.warning("job %s: the simulation process %s (%s); requeued", job.id, what, attempt)
            return outcome(End.REQUEUED_WORKER_DIED, what=what, attempt=attempt)
        log.warning("job %s: the simulation process %s (%s); failed", job.id, what, attempt)
        return outcome(
            End.WORKER_DIED,
            what=what,
            attempt=attempt,
            max_attempts=self.pool.max_attempts,
            solution=(
                "Reduce the number of qubits the circuit acts on, or start the emulator with a "
                "larger --worker-memory-mb, then resubmit."
                if crash.looks_like_memory(self.pool.memory_mb)
                else "Submit the job again; if it keeps failing, see the emulator's log."
            ),
        )

    # -- child process management --------------------------------------------------------------

    def _crashed(self) -> Crashed:
        """The child ended without an answer: how (it is reaped first, so its exit is known)."""
        assert self._process is not None
        process = self._process
        # Its pipe can close a moment before the process has exited.
        process.join(5.0)
        code = process.exitcode
        self._shutdown_child()  # kills it if, oddly, it lives on without its pipe
        return Crashed(code)

    def _kill_child(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)
        self._shutdown_child()

    def _shutdown_child(self) -> None:
        self.ready = False
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if process is not None and process.is_alive() and conn is not None:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
            process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class Crashed:
    """The worker process ended without answering: killed, crashed or exited."""

    exitcode: int | None  # negative: the signal that ended it; None: it stopped answering

    def describe(self, memory_mb: int) -> str:
        """e.g. "was killed by signal SIGKILL: the simulation may have exceeded …"."""
        code = self.exitcode
        if code is None:
            what = "stopped answering"
        elif code < 0:
            what = f"was killed by signal {_signal_name(-code)}"
        else:
            what = f"exited with code {code}"
        if self.looks_like_memory(memory_mb):
            what += f": the simulation may have exceeded the worker memory limit of {memory_mb} MiB"
        return what

    def looks_like_memory(self, memory_mb: int) -> bool:
        code = self.exitcode
        return bool(memory_mb) and code is not None and code < 0 and -code in MEMORY_SIGNALS


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# A run's end as the slot sees it: the child's result, a row of the outcome table, or a dead
# child (which becomes a row once the attempts are counted, in _finish).
Ended = Completed | Outcome | Crashed
CANCELLED = outcome(End.CANCELLED_BY_CLIENT)  # the service has cancelled it already
STOPPING = outcome(End.REQUEUED_SHUTDOWN)


def _lease(job: JobSnapshot) -> Lease:
    """The run's fencing lease, from the claim's snapshot: every write of the run checks it."""
    lease = job.lease
    assert lease is not None, "a claimed job has a worker"
    return lease


def _ran_too_long(job: JobSnapshot) -> Outcome:
    limit = "timeout_secs" if job.api is Api.DIRECT_ACCESS else "max_execution_time"
    return outcome(End.RAN_TOO_LONG, limit=limit, seconds=job.time_limit)


def _deadline(job: JobSnapshot) -> float | None:
    """Monotonic deadline from the job's time limit (max_execution_time / timeout_secs)."""
    if not job.time_limit or job.time_limit <= 0:
        return None
    started = job.running_at or utcnow()
    remaining = job.time_limit - (utcnow() - started).total_seconds()
    return time.monotonic() + max(0.0, remaining)


def _storage(job: JobSnapshot) -> dict[str, dict[str, str]]:
    storage: dict[str, dict[str, str]] = json.loads(job.storage or "{}")
    return storage


def _storage_failure(exc: StorageError) -> Outcome:
    return outcome(End.STORAGE_FAILED, error=str(exc))


def _outcome_lines(ended: Completed | Outcome, job: JobSnapshot) -> list[tuple[str, str]]:
    """(level, message) lines that end a Direct Access job's log."""
    if isinstance(ended, Completed):
        return [("INFO", line) for line in ended.log] + [("INFO", f"Finished {job.id}")]
    message, level, _ = ended.render()
    head, _, detail = message.partition("\n")
    lines = [(level, f"Job {job.id}: {head}")]
    return lines + ([("DEBUG", detail)] if detail.strip() else [])
