"""Jobs outlive a graceful restart and killed workers; a worker's memory limit fails a job cleanly.

Real servers, the unmodified client, real signals: SIGTERM to the server, SIGKILL to its
simulation process (found among the server's children).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from qiskit_ibm_runtime import RuntimeJobFailureError, SamplerV2

from tests.circuits import bell, isa, long_running_circuit, memory_failure_circuit
from tests.support import (
    EmulatorControl,
    EmulatorServer,
    service_for,
    simulation_processes,
    wait_until,
)

pytestmark = pytest.mark.slow

# Shots of tests.circuits.long_running_circuit for a run of a few seconds: long enough to act
# on while it is Running, short enough to let it complete.
FEW_SECONDS_OF_SHOTS = 12


def worker_processes(server: EmulatorServer) -> list[psutil.Process]:
    """The server's simulation processes (not its fork server, not its tracker)."""
    assert server.process is not None
    return simulation_processes(server.process.pid)


def kill_worker(server: EmulatorServer) -> None:
    (worker,) = worker_processes(server)  # one worker: the one running the job
    worker.kill()  # SIGKILL


def state(control: EmulatorControl, job_id: str) -> str:
    return str(control.job(job_id)["state"])


def log_text(job: dict[str, Any]) -> str:
    return "\n".join(event["message"] for event in job["log"])


def test_sigterm_then_kill_9_of_a_worker_the_job_still_completes(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    """Attempt budget intact: the graceful stop does not count, the killed run does."""
    flags = ("--job-max-attempts", "2")
    server = EmulatorServer(tmp_path / "data", *flags, workers=1).start()
    control = EmulatorControl(server.url)
    try:
        with service_for(server) as service:
            backend = service.backend("ibm_brisbane")
            circuit = isa(backend, long_running_circuit())
            job_id = SamplerV2(mode=backend).run([circuit], shots=FEW_SECONDS_OF_SHOTS).job_id()
        wait_until(lambda: state(control, job_id) == "running", timeout=120)
        assert server.stop(signal.SIGTERM) == 0  # graceful: requeues the running job
        control.close()

        server = EmulatorServer(tmp_path / "data", *flags, workers=1, port=server.port).start()
        control = EmulatorControl(server.url)
        assert "shutting down" in log_text(control.job(job_id))
        wait_until(lambda: state(control, job_id) == "running", timeout=120)
        kill_worker(server)
        wait_until(lambda: "killed by signal SIGKILL" in log_text(control.job(job_id)), 60)
        wait_until(lambda: state(control, job_id) in ("completed", "failed"), timeout=300)

        job = control.job(job_id)
        assert job["state"] == "completed", job["reason"]
        assert job["attempts"] == 2  # the killed run and the one that completed
        messages = [event["message"] for event in job["log"]]
        shutdown = next(i for i, m in enumerate(messages) if "requeued" in m.lower())
        killed = next(i for i, m in enumerate(messages) if "killed by signal SIGKILL" in m)
        assert "shutting down" in messages[shutdown] and "not counted" in messages[shutdown]
        assert "requeued" in messages[killed].lower() and "attempt 1 of 2" in messages[killed]
        assert shutdown < killed
    finally:
        control.close()
        server.stop()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One worker, one attempt per job, and a 64 MiB memory limit."""
    server = EmulatorServer(
        tmp_path_factory.mktemp("limited"),
        "--job-max-attempts",
        "1",
        "--worker-memory-mb",
        "64",
        workers=1,
    ).start()
    server.wait_workers_ready()
    yield server
    server.stop()


def test_a_job_on_its_last_attempt_whose_worker_is_killed_fails_naming_the_signal(
    limited: EmulatorServer, client_env: dict[str, str]
) -> None:
    control = EmulatorControl(limited.url)
    try:
        with service_for(limited) as service:
            backend = service.backend("ibm_brisbane")
            circuit = isa(backend, long_running_circuit())
            job = SamplerV2(mode=backend).run([circuit], shots=1000)
            wait_until(lambda: state(control, job.job_id()) == "running", timeout=120)
            kill_worker(limited)
            with pytest.raises(RuntimeJobFailureError) as failure:
                job.result(timeout=120)
        assert "killed by signal SIGKILL" in str(failure.value)
        detail = control.job(job.job_id())
        assert detail["reason_code"] == 1517 and detail["attempts"] == 1
        assert "killed by signal SIGKILL" in detail["reason"]
        # The limit is set, and a SIGKILL is how the kernel ends a process out of memory.
        assert "worker memory limit of 64 MiB" in detail["reason"]
        limited.wait_workers_ready()  # a fresh worker replaced the killed one
    finally:
        control.close()


def test_a_statevector_beyond_the_memory_limit_fails_at_once_naming_it(
    limited: EmulatorServer, client_env: dict[str, str]
) -> None:
    """26 qubits need 1 GiB, refused before allocation; a small job then runs normally."""
    control = EmulatorControl(limited.url)
    try:
        with service_for(limited) as service:
            backend = service.backend("ibm_brisbane")
            too_big = SamplerV2(mode=backend).run(
                [memory_failure_circuit(backend.target, width=26)], shots=10
            )
            with pytest.raises(RuntimeJobFailureError) as failure:
                too_big.result(timeout=120)
            assert "worker memory limit of 64 MiB" in str(failure.value)
            detail = control.job(too_big.job_id())
            assert detail["attempts"] == 1 and "Insufficient memory" in detail["reason"]

            small = SamplerV2(mode=backend).run([isa(backend, bell())], shots=50)
            assert small.result(timeout=120)[0].data.meas.num_shots == 50
    finally:
        control.close()
