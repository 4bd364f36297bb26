"""`python -m emulator worker`: a worker node beside an API node (`serve --workers 0`) on one
store — jobs run there, a cancel sent to the API node stops the worker's simulation, and a
SIGTERM gives its running job back to the queue without spending an attempt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from qiskit_ibm_runtime import SamplerV2

from tests.circuits import bell, isa, long_running_circuit
from tests.conftest import bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import (
    EmulatorControl,
    EmulatorServer,
    WorkerProcess,
    service_for,
    wait_until,
)

pytestmark = pytest.mark.slow


@contextmanager
def worker_node(data_dir: Path, *extra: str) -> Iterator[WorkerProcess]:
    """A worker node on the store of `data_dir` (SQLite unless `extra` names another), stopped
    (SIGTERM) afterwards."""
    worker = WorkerProcess(data_dir, *extra).start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def api_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One API node for the module (each test brings its own worker node)."""
    server = EmulatorServer(tmp_path_factory.mktemp("api-node"), workers=0).start()
    yield server
    server.stop()


def state(control: EmulatorControl, job_id: str) -> str:
    return str(control.job(job_id)["state"])


def test_jobs_run_on_the_worker_node_and_a_cancel_reaches_its_simulation(
    api_node: EmulatorServer, client_env: dict[str, str]
) -> None:
    control = EmulatorControl(api_node.url)
    with worker_node(api_node.data_dir, "--workers", "1") as worker, service_for(api_node) as svc:
        backend = svc.backend("ibm_brisbane")
        quick = SamplerV2(mode=backend).run([isa(backend, bell())], shots=100)
        assert sum(quick.result()[0].data.meas.get_counts().values()) == 100
        log = [event["message"] for event in control.job(quick.job_id())["log"]]
        assert any(m.startswith("Job running on emulator worker") for m in log)

        long_job = SamplerV2(mode=backend).run([isa(backend, long_running_circuit())])
        wait_until(lambda: state(control, long_job.job_id()) == "running", timeout=120)
        (running,) = wait_until(worker.simulations, timeout=60)
        long_job.cancel()  # through the API node, which runs no simulation
        assert state(control, long_job.job_id()) == "cancelled"
        wait_until(lambda: not psutil.pid_exists(running), timeout=30)
        assert worker.poll() is None  # the node lives on, with a fresh simulation process


def test_sigterm_gives_the_running_job_back_without_spending_an_attempt(
    api_node: EmulatorServer, client_env: dict[str, str]
) -> None:
    control = EmulatorControl(api_node.url)
    with service_for(api_node) as svc:
        backend = svc.backend("ibm_brisbane")
        job_id = SamplerV2(mode=backend).run([isa(backend, long_running_circuit())]).job_id()
    with worker_node(api_node.data_dir, "--workers", "1") as worker:
        wait_until(lambda: state(control, job_id) == "running", timeout=120)
        assert worker.stop(60) == 0
    job = control.job(job_id)
    assert job["state"] == "queued" and job["attempts"] == 0
    assert any("not counted" in event["message"] for event in job["log"])
    control.close()


def test_a_held_poll_on_the_api_node_answers_with_the_worker_nodes_outcome(
    tmp_path: Path,
) -> None:
    """The hold is far longer than the poll's deadline: only an answer at the moment the
    worker node ends the job (no notice reaches this process but the store) meets it."""
    hold_s = 600
    shared = f"sqlite:///{tmp_path / 'shared.db'}"  # a shared store: API and worker nodes
    server = EmulatorServer(
        tmp_path, "--database-url", shared, "--status-hold-ms", str(hold_s * 1000), workers=0
    ).start()
    try:
        with worker_node(tmp_path, "--database-url", shared, "--workers", "1"), httpx.Client(
            base_url=server.url + "/api/v1", headers=bearer(server.url)
        ) as api:
            job_id = api.post("/jobs", json=sampler_body()).json()["id"]
            answer = api.get(f"/jobs/{job_id}", timeout=hold_s / 10).json()
            assert answer["state"]["status"] == "Completed"
    finally:
        server.stop()
