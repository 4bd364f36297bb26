"""The worker child process: decode → Aer → encode, one job at a time, forever.

It never touches the store. The supervising slot (pool.py) sends it a ticket and records the
outcome; killing this process is how a running simulation is cancelled, since Aer cannot
notice a flag.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import traceback
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection

PR_SET_PDEATHSIG = 1


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


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process when the server dies, even by SIGKILL.

    Otherwise an orphaned simulation keeps a core busy for as long as it runs.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def child_main(conn: Connection, warm: list[tuple[str, str]]) -> None:
    """Entry point of a worker process."""
    _die_with_parent()
    # The server handles Ctrl-C and shuts children down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One process per core: Aer's own threading would oversubscribe.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.simplefilter("ignore")
    # Aer logs every failed simulation itself; the failure is recorded on the job instead.
    logging.getLogger("qiskit_aer").setLevel(logging.CRITICAL)

    from emulator import programs
    from emulator.store.snapshots import load_snapshot

    warm_up = getattr(programs, "warm_up", None)
    for name, source in warm if warm_up else []:
        try:
            warm_up(load_snapshot(name, source))
        except Exception:  # noqa: BLE001 - warming is an optimisation only
            pass
    conn.send("ready")
    while True:
        try:
            ticket = conn.recv()
        except (EOFError, OSError):
            return
        if ticket is None:
            return
        conn.send(run_ticket(ticket))


def _wants_qiskit(params: str) -> bool:
    """IBM's schema: `support_qiskit` true (the default) selects RuntimeEncoder output."""
    import json

    try:
        decoded = json.loads(params)
    except ValueError:
        return True
    return not (isinstance(decoded, dict) and decoded.get("support_qiskit") is False)


def run_ticket(ticket: Ticket) -> Completed | Failed:
    """Run one job and describe its outcome; never raises."""
    from emulator import programs
    from emulator.store.snapshots import load_snapshot

    try:
        snapshot = load_snapshot(ticket.backend, ticket.source)
        params = ticket.params
        if ticket.default_seed is not None:
            params = _with_default_seed(ticket.program_id, params, ticket.default_seed)
        out = programs.run_program(ticket.program_id, params, snapshot)
        result = out.result
        if ticket.honour_support_qiskit and not _wants_qiskit(ticket.params):
            from emulator.programs.plain import plain_results

            result = plain_results(ticket.program_id, result)
        return Completed(result=result, log=list(out.log), quantum_seconds=out.quantum_seconds)
    except programs.ProgramFailure as exc:
        return Failed(exc.reason, exc.reason_code, exc.solution, traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - any other error is reported on the job, not raised
        return Failed(
            reason=f"The emulator could not run this job: {type(exc).__name__}: {exc}",
            reason_code=1517,
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
