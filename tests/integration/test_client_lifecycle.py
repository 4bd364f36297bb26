"""Job lifecycle through the unmodified client: queued cancel, running cancel, time limits,
pagination, and persistence across a server restart."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from qiskit_ibm_runtime import SamplerV2
from qiskit_ibm_runtime.exceptions import RuntimeJobMaxTimeoutError

from tests.circuits import bell, isa, long_running_circuit
from tests.conftest import bearer
from tests.support import EmulatorServer, service_for, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path_factory.mktemp("one-worker"), workers=1).start()
    server.wait_workers_ready()
    yield server
    server.stop()


def test_cancel_a_queued_job(idle_server: EmulatorServer, client_env: dict[str, str]) -> None:
    with service_for(idle_server) as service:
        backend = service.backend("fake_manila")
        job = SamplerV2(mode=backend).run([isa(backend, bell())])
        assert job.status() == "QUEUED"
        job.cancel()
        assert job.status() == "CANCELLED"
        assert service.job(job.job_id()).status() == "CANCELLED"


def test_jobs_limit_none_pages_to_the_exact_count(
    idle_server: EmulatorServer, client_env: dict[str, str]
) -> None:
    with service_for(idle_server) as service:
        backend = service.backend("ibm_fez")
        sampler = SamplerV2(mode=backend)
        sampler.options.environment.job_tags = ["paging"]
        circuit = isa(backend, bell())
        submitted = {sampler.run([circuit]).job_id() for _ in range(23)}
        listed = service.jobs(limit=None, job_tags=["paging"])  # pages of 20: needs exact counts
        assert {j.job_id() for j in listed} == submitted
        assert len(service.jobs(limit=5, skip=20, job_tags=["paging"])) == 3
        assert len(service.jobs(limit=None, job_tags=["paging"], pending=False)) == 0


def test_cancelling_a_running_job_stops_its_simulation(
    one_worker: EmulatorServer, client_env: dict[str, str]
) -> None:
    with service_for(one_worker) as service:
        backend = service.backend("ibm_brisbane")
        long_job = SamplerV2(mode=backend).run([isa(backend, long_running_circuit())], shots=1000)
        wait_until(lambda: long_job.status() == "RUNNING", timeout=60)
        long_job.cancel()
        assert service.job(long_job.job_id()).status() == "CANCELLED"
        # The only worker was busy for minutes; a job right after it finishes promptly only if
        # the simulation was really stopped.
        quick = SamplerV2(mode=backend).run([isa(backend, bell())], shots=100)
        quick.wait_for_final_state(timeout=60)
        assert quick.status() == "DONE"
        assert "cancelled" in long_job.logs().lower()


def test_max_execution_time_cancels_with_1305(
    one_worker: EmulatorServer, client_env: dict[str, str]
) -> None:
    with service_for(one_worker) as service:
        backend = service.backend("ibm_brisbane")
        sampler = SamplerV2(mode=backend)
        sampler.options.max_execution_time = 2
        job = sampler.run([isa(backend, long_running_circuit())], shots=1000)
        with pytest.raises(RuntimeJobMaxTimeoutError):
            job.result(timeout=120)
        raw = httpx.get(
            f"{one_worker.url}/api/v1/jobs/{job.job_id()}", headers=bearer(one_worker.url)
        ).json()
        assert raw["state"]["reason_code"] == 1305 and raw["status"] == "Cancelled - Ran too long"


def test_jobs_survive_a_restart_and_interrupted_jobs_are_rerun(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    server = EmulatorServer(tmp_path / "data", workers=1).start()
    try:
        with service_for(server) as service:
            backend = service.backend("ibm_brisbane")
            done = SamplerV2(mode=backend).run([isa(backend, bell())], shots=50)
            done.result()
            running = SamplerV2(mode=backend).run(
                [isa(backend, long_running_circuit())], shots=1000
            )
            wait_until(lambda: running.status() == "RUNNING", timeout=60)
        assert server.process is not None
        workers = psutil.Process(server.process.pid).children(recursive=True)
        assert workers
        server.stop(signal.SIGKILL)  # no chance to clean up: as in a crash
        # Its simulation processes die with it instead of burning a core as orphans.
        wait_until(lambda: not any(w.is_running() and w.status() != "zombie" for w in workers), 10)
        server = EmulatorServer(tmp_path / "data", workers=1, port=server.port).start()
        with service_for(server) as service:
            again = service.job(done.job_id())
            assert again.status() == "DONE"
            assert again.result()[0].data.meas.num_shots == 50
            interrupted = service.job(running.job_id())
            # Re-run (never left Running by a dead worker): it is queued or running again.
            wait_until(lambda: "requeued" in interrupted.logs().lower(), timeout=30)
            assert interrupted.status() in ("QUEUED", "RUNNING")
            interrupted.cancel()
    finally:
        server.stop()
