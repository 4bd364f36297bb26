"""The worker child process: decode → Aer → encode, one job at a time, forever.

It never touches the store. The supervising slot (pool.py) sends it a ticket and records the
outcome; killing this process is how a running simulation is cancelled, since Aer cannot
notice a flag.

Memory: with a limit of N MiB, Aer is told `max_memory_mb=N` (it refuses a too-large state
cleanly, before allocating), and the process's address space is capped (RLIMIT_AS) at its own
footprint after warm-up plus N plus a small slack, so any other runaway allocation raises
MemoryError instead of exhausting the machine. The footprint is measured, not assumed: the
imports alone map about 1.6 GiB (qiskit reserves 1 GiB of address space), of which ~200 MiB
is resident.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import re
import select
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from emulator.domain.outcomes import EXECUTION_FAILED

if TYPE_CHECKING:
    from emulator.domain.snapshots import BackendSnapshot

PR_SET_PDEATHSIG = 1
# Address space allowed while importing, before the footprint is known (imports need ~1.6 GiB).
STARTUP_ALLOWANCE_MB = 4096
# Address space beyond footprint + limit: the threads and objects of a small job (~150 MiB).
JOB_SLACK_MB = 256
REASON_MEMORY = EXECUTION_FAILED
# How a simulator reports running out of memory (Aer's messages, C++ and Python errors);
# "not enough memory slots" is about classical bits, so "not enough memory to" only.
MEMORY_ERRORS = re.compile(
    r"insufficient memory|not enough memory to|cannot allocate memory|bad_alloc|"
    r"out of memory|MemoryError|max_memory_mb",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Ticket:
    """What a child needs to run one job."""

    job_id: str
    program_id: str
    params: str
    backend: str
    source: str
    # Direct Access: answer in IBM's plain JSON when the input says `support_qiskit: false`.
    honour_support_qiskit: bool = False
    # After `POST /_emulator/seed`: the seed_simulator of a job that sets none itself.
    default_seed: int | None = None
    # --max-decoded-mb: Direct Access inputs reach the worker unvalidated, so it charges them.
    max_decoded_bytes: int = 200 * 1024 * 1024
    # --simulation-method for the job's backend (auto, or the method every job must use) and
    # --max-job-seconds (0: none), for the estimate made before the job runs.
    method: str = "auto"
    max_job_seconds: int = 0
    # A `mock_*` backend's job (the client's dry_run): validated, answered with random data.
    dry_run: bool = False


@dataclass(frozen=True)
class Ready:
    """A child's first message: imports done, and how much address space it maps."""

    footprint_mb: int  # after imports and warm-up; 0 where unknown
    address_limit_mb: int | None  # the RLIMIT_AS applied; None: none


@dataclass(frozen=True)
class Completed:
    result: str
    log: list[str]
    quantum_seconds: float


@dataclass(frozen=True)
class Failed:
    """A failure the user should see (bad circuit for the simulator, …) or an emulator bug."""

    reason: str
    reason_code: int
    solution: str
    detail: str
    log: list[str] = field(default_factory=list)
    """The program's log lines before it failed."""


@functools.lru_cache(maxsize=64)
def snapshot_of(name: str, source: str) -> BackendSnapshot:
    """A backend's snapshot, loaded once per process: loading copies its documents (~30 ms for
    a 127-qubit device), which was half of a small job's time in the worker. Read-only."""
    from emulator.domain.snapshots import load_snapshot

    return load_snapshot(name, source)


def _die_with_parent(server_pid: int | None = None) -> None:
    """Die when the server dies, even by SIGKILL: otherwise an orphaned simulation keeps a core
    busy for as long as it runs.

    Linux kills this process when its parent dies (PR_SET_PDEATHSIG). Forked from the fork
    server, the parent is the fork server, which outlives the server while any worker lives:
    so a thread also waits on the server itself (`server_pid`; a pidfd, or polling where the
    kernel has none) and ends the process when it exits.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
    if server_pid is not None and server_pid != os.getppid():
        threading.Thread(
            target=_exit_when_gone, args=(server_pid,), name="lifeline", daemon=True
        ).start()


def _exit_when_gone(pid: int) -> None:
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: look every half second
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the pid now belongs to another user's process
                os._exit(1)
            time.sleep(0.5)
    select.select([handle], [], [])  # readable once the process has exited
    os._exit(1)


def memory_limit_mb(setting: int, workers: int) -> int:
    """The memory limit of each worker: `setting`, or by default the machine's memory divided
    by the workers (0: no limit, when it cannot be known)."""
    if setting > 0:
        return setting
    total = physical_memory_mb()
    return total // workers if workers > 0 and total > 0 else 0


def physical_memory_mb() -> int:
    """This machine's memory, or its container's (cgroup v2) limit when lower; 0: unknown."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0
    try:
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        cgroup = "max"
    if cgroup.isdigit():
        total = min(total, int(cgroup))
    return max(0, total) >> 20


def address_space_mb() -> int:
    """This process's mapped address space (VmSize), 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) >> 10
    except (OSError, ValueError, IndexError):
        pass
    return 0


def limit_address_space(mb: int) -> int | None:
    """Cap this process's address space (RLIMIT_AS soft limit) at `mb`; the limit set."""
    try:
        import resource
    except ImportError:  # not a POSIX system: Aer's own check is the only bound
        return None
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = mb << 20
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError):
        return None
    return soft >> 20


def child_main(
    conn: Connection,
    warm: list[tuple[str, str]],
    memory_mb: int = 0,
    server_pid: int | None = None,
    device: str = "CPU",
) -> None:
    """Entry point of a worker process; `memory_mb` is the memory a job may use (0: no limit),
    `server_pid` the process whose death ends this one, `device` where statevectors run."""
    _die_with_parent(server_pid)
    # The server handles Ctrl-C and SIGTERM and shuts children down itself: a signal sent to
    # the whole process group must not look like a crashed simulation.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # One process per core: Aer's own threading would oversubscribe.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.simplefilter("ignore")
    # Aer logs every failed simulation itself; the failure is recorded on the job instead.
    logging.getLogger("qiskit_aer").setLevel(logging.CRITICAL)
    if memory_mb:
        # Before the heavy imports, so nothing they do escapes a bound; tightened below.
        limit_address_space(memory_mb + STARTUP_ALLOWANCE_MB)

    from emulator import simulation
    from emulator.simulation.noise import limit_simulator_memory, use_device

    use_device(device)

    warm_up = getattr(simulation, "warm_up", None)
    for name, source in warm if warm_up else []:
        try:
            warm_up(snapshot_of(name, source))
        except Exception:  # noqa: BLE001 - warming is an optimisation only
            pass
    footprint = address_space_mb()
    limit = None
    if memory_mb:
        limit_simulator_memory(memory_mb)
        if footprint:
            limit = limit_address_space(footprint + JOB_SLACK_MB + memory_mb)
    conn.send(Ready(footprint, limit))
    while True:
        try:
            ticket = conn.recv()
            if ticket is None:
                return
            answer: Completed | Failed = run_ticket(ticket, memory_mb)
            conn.send(answer)
        except (EOFError, OSError):
            return
        except MemoryError:
            # The ticket or the result did not fit (unpickling, pickling): nothing was sent.
            conn.send(memory_failure(memory_mb, "MemoryError while exchanging the job"))


def _wants_qiskit(params: str) -> bool:
    """IBM's schema: `support_qiskit` true (the default) selects RuntimeEncoder output."""
    import json

    try:
        decoded = json.loads(params)
    except ValueError:
        return True
    return not (isinstance(decoded, dict) and decoded.get("support_qiskit") is False)


def memory_failure(
    memory_mb: int, what: str, detail: str = "", log: list[str] | None = None
) -> Failed:
    """The failure of a job that ran out of memory, naming the worker memory limit if any."""
    if memory_mb:
        reason = f"The simulation exceeded the worker memory limit of {memory_mb} MiB: {what}"
        solution = (
            "Use fewer qubits, shots or parameter sets, or start the emulator with a larger "
            "--worker-memory-mb."
        )
    else:
        reason = f"The simulation ran out of memory: {what}"
        solution = "Use fewer qubits, shots or parameter sets."
    return Failed(reason, REASON_MEMORY, solution, detail, list(log or []))


def _is_memory_error(exc: BaseException, reason: str) -> bool:
    return (
        isinstance(exc, MemoryError)
        or isinstance(exc.__cause__, MemoryError)
        or MEMORY_ERRORS.search(reason) is not None
    )


def run_ticket(ticket: Ticket, memory_mb: int = 0) -> Completed | Failed:
    """Run one job and describe its outcome; never raises (short of MemoryError, rarely).

    A simulation that runs out of memory is deterministic: retrying cannot help, so it is a
    Failed answer (naming the limit), never a crash."""
    from emulator import simulation
    try:
        snapshot = snapshot_of(ticket.backend, ticket.source)
        params = ticket.params
        if ticket.default_seed is not None:
            params = _with_default_seed(ticket.program_id, params, ticket.default_seed)
        out = simulation.run_program(
            ticket.program_id,
            params,
            snapshot,
            ticket.max_decoded_bytes,
            untrusted=ticket.honour_support_qiskit,  # fetched from a Direct Access URL
            policy=simulation.Policy(ticket.method, ticket.max_job_seconds, ticket.dry_run),
        )
        result = out.result
        if ticket.honour_support_qiskit and not _wants_qiskit(ticket.params):
            from emulator.simulation.plain import plain_results

            result = plain_results(ticket.program_id, result)
        return Completed(result=result, log=list(out.log), quantum_seconds=out.quantum_seconds)
    except simulation.ProgramFailure as exc:
        if memory_mb and _is_memory_error(exc, exc.reason):
            return memory_failure(memory_mb, exc.reason, traceback.format_exc(), exc.log)
        return Failed(
            exc.reason, exc.reason_code, exc.solution, traceback.format_exc(), list(exc.log)
        )
    except MemoryError as exc:
        return memory_failure(memory_mb, f"MemoryError: {exc}", traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - any other error is reported on the job, not raised
        if ticket.honour_support_qiskit:
            # A fetched input: its content must not come back through the reason or the log.
            return Failed(
                reason=f"The emulator could not run this job ({type(exc).__name__}) on its "
                f"input of {len(ticket.params)} bytes.",
                reason_code=EXECUTION_FAILED,
                solution="Check the job input; the server log has the details.",
                detail="",
            )
        return Failed(
            reason=f"The emulator could not run this job: {type(exc).__name__}: {exc}",
            reason_code=EXECUTION_FAILED,
            solution="This is likely an emulator defect; the job log has the traceback.",
            detail=traceback.format_exc(),
        )


def _with_default_seed(program_id: str, params_text: str, seed: int) -> str:
    """`params` with `options.simulator.seed_simulator` set, unless the job sets one."""
    try:
        params = json.loads(params_text)
    except ValueError:
        return params_text  # the program reports the bad input itself
    if program_id not in ("sampler", "estimator") or not isinstance(params, dict):
        return params_text
    options = params.setdefault("options", {})
    if not isinstance(options, dict):
        return params_text
    simulator = options.setdefault("simulator", {})
    if not isinstance(simulator, dict) or simulator.get("seed_simulator") is not None:
        return params_text
    simulator["seed_simulator"] = seed
    return json.dumps(params)
