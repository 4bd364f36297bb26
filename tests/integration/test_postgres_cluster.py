"""The scale-out deployment on a real PostgreSQL: two API nodes (no simulation) and two worker
nodes, driven by the unmodified client across both ports.

Every job runs exactly once and reads the same from either node; a worker node killed with
kill -9 loses its job to the other node; a cancel through an API node stops the simulation on
the worker node running it; a held poll on an API node answers with a worker node's outcome;
Direct Access lanes hold under submissions racing through both API nodes.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from qiskit_ibm_runtime import SamplerV2

from tests.circuits import bell, isa, long_running_circuit
from tests.conftest import POSTGRES, bearer, postgres_database
from tests.integration.test_direct_access_http import job_body
from tests.integration.test_runtime_http import sampler_body
from tests.objects import object_server
from tests.support import (
    EmulatorControl,
    EmulatorServer,
    WorkerProcess,
    applied_env,
    emulator_env,
    wait_until,
)

pytestmark = pytest.mark.slow

STALE_S = "4"  # --worker-stale-seconds of every node: a killed node's job moves sooner
HOLD_S = 300
"""The held-poll test's API node holds a status poll this long: far beyond the poll's deadline,
so a held poll that answers did so the moment its job ended."""


@dataclass
class Cluster:
    database_url: str
    api: tuple[EmulatorServer, EmulatorServer]
    workers: list[WorkerProcess]

    def worker_running(self, worker_id: str) -> WorkerProcess:
        """The worker node whose slot `worker_id` is."""
        (node,) = [w for w in self.workers if worker_id.startswith(w.pool_id() + "-")]
        return node

    def replace(self, dead: WorkerProcess) -> None:
        """Start a fresh worker node in place of a killed one."""
        index = self.workers.index(dead)
        self.workers[index] = WorkerProcess(
            dead.data_dir, *dead.args[2:], name=f"worker-{index}-{uuid.uuid4().hex[:6]}"
        ).start()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not POSTGRES:
        import os

        if os.environ.get("IBMQ_EMULATOR_REQUIRE_POSTGRES"):
            pytest.fail("IBMQ_EMULATOR_REQUIRE_POSTGRES is set, IBMQ_EMULATOR_TEST_POSTGRES not")
        pytest.skip("PostgreSQL cluster skipped: set IBMQ_EMULATOR_TEST_POSTGRES (.ci/run does)")
    root = tmp_path_factory.mktemp("cluster")
    with postgres_database() as url:
        api = tuple(
            EmulatorServer(
                root / name,
                *("--database-url", url, "--node-name", name, "--worker-stale-seconds", STALE_S),
                workers=0,
            )
            for name in ("api-a", "api-b")
        )
        workers = [
            WorkerProcess(
                root / f"worker-{i}",
                *("--database-url", url, "--workers", "1", "--worker-stale-seconds", STALE_S),
            )
            for i in range(2)
        ]
        try:
            for node in api:
                node.start()
            for worker in workers:
                worker.start()
            yield Cluster(url, api, workers)  # type: ignore[arg-type]
        finally:
            for worker in workers:
                worker.stop()
            for node in api:
                if node.process is not None:
                    node.stop()


@pytest.fixture()
def services(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """One QiskitRuntimeService per API node, each configured only by `env` for its port."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    first, second = cluster.api
    with applied_env({"HOME": str(tmp_path)}):
        with applied_env(emulator_env(first.url)):
            a = QiskitRuntimeService()
        with applied_env(emulator_env(second.url)):
            b = QiskitRuntimeService()
            yield a, b


def runs(control: EmulatorControl, job_id: str) -> list[str]:
    """The job-log lines of each claim: one per execution."""
    return [
        e["message"]
        for e in control.job(job_id)["log"]
        if e["message"].startswith("Job running on emulator worker")
    ]


def test_jobs_through_both_api_nodes_each_run_once_and_read_the_same_everywhere(
    cluster: Cluster, services: tuple[Any, Any]
) -> None:
    tag = f"burst-{uuid.uuid4().hex[:8]}"
    samplers = []
    for service in services:
        backend = service.backend("ibm_brisbane")
        sampler = SamplerV2(mode=backend)
        sampler.options.environment.job_tags = [tag]
        samplers.append(sampler)
    circuit = isa(backend, bell())
    # 60: more than a page of job listings (50) and enough to race the claims of two worker
    # nodes; 100 cost the suite's 15-minute budget 15 s more for no other case.
    submitted = [samplers[i % 2].run([circuit], shots=20) for i in range(60)]
    for job in submitted:
        assert sum(job.result()[0].data.meas.get_counts().values()) == 20
    control = EmulatorControl(cluster.api[0].url)
    for job in submitted:
        seen = control.job(job.job_id())
        claims = [e for e in seen["log"] if e["message"].startswith("Job running on emulator")]
        assert len(claims) == 1 and seen["attempts"] == 1, seen["log"]
    a, b = services
    assert len(a.jobs(limit=None, job_tags=[tag])) == len(b.jobs(limit=None, job_tags=[tag])) == 60
    assert len(a.jobs(limit=None)) == len(b.jobs(limit=None))
    control.close()


def test_a_token_from_one_api_node_is_valid_on_the_other(cluster: Cluster) -> None:
    first, second = cluster.api
    with httpx.Client(base_url=second.url, headers=bearer(first.url)) as api:
        assert api.get("/api/v1/backends").status_code == 200


def test_a_held_poll_on_one_api_node_answers_with_a_worker_nodes_outcome(
    cluster: Cluster, tmp_path: Path
) -> None:
    holding = EmulatorServer(
        tmp_path,
        "--database-url",
        cluster.database_url,
        "--status-hold-ms",
        str(HOLD_S * 1000),
        workers=0,
    ).start()
    second = cluster.api[1]
    try:
        with (
            httpx.Client(base_url=holding.url + "/api/v1", headers=bearer(second.url)) as a,
            httpx.Client(base_url=second.url + "/api/v1", headers=bearer(second.url)) as b,
        ):
            job_id = b.post("/jobs", json=sampler_body()).json()["id"]
            answer = a.get(f"/jobs/{job_id}", timeout=HOLD_S / 5).json()
        assert answer["state"]["status"] == "Completed"
    finally:
        holding.stop()


def long_job_on_a_worker(
    cluster: Cluster, service: Any, control: EmulatorControl, shots: int | None = None
) -> tuple[Any, str, WorkerProcess]:
    """A long Sampler job, once Running: the job, its worker slot and that slot's node."""
    backend = service.backend("ibm_brisbane")
    job = SamplerV2(mode=backend).run([isa(backend, long_running_circuit())], shots=shots)
    worker_id = wait_until(lambda: control.job(job.job_id())["worker_id"], timeout=120)
    return job, worker_id, cluster.worker_running(worker_id)


def test_a_cancel_through_an_api_node_stops_the_simulation_on_its_worker_node(
    cluster: Cluster, services: tuple[Any, Any]
) -> None:
    control = EmulatorControl(cluster.api[1].url)
    job, _, node = long_job_on_a_worker(cluster, services[0], control)
    (simulation,) = wait_until(node.simulations, timeout=60)
    services[1].job(job.job_id()).cancel()  # through the other API node
    assert control.job(job.job_id())["state"] == "cancelled"
    wait_until(lambda: not psutil.pid_exists(simulation), timeout=30)
    assert node.poll() is None  # the node lives on, with a fresh simulation process
    control.close()


def test_a_killed_worker_nodes_job_completes_on_the_other_node(
    cluster: Cluster, services: tuple[Any, Any]
) -> None:
    control = EmulatorControl(cluster.api[0].url)
    job, first_worker, dying = long_job_on_a_worker(cluster, services[0], control, shots=40)
    dying.kill_hard()  # the node, and its simulation process with it
    try:
        done = wait_until(
            lambda: (j := control.job(job.job_id()))["state"] in ("completed", "failed") and j,
            timeout=300,
        )
        assert done["state"] == "completed" and done["attempts"] == 2, done
        first, second = runs(control, job.job_id())
        assert first_worker in first and first_worker not in second
        assert any("no heartbeat" in e["message"] for e in done["log"]), done["log"]
        for service in services:  # the result, from either API node
            counts = service.job(job.job_id()).result()[0].data.meas.get_counts()
            assert sum(counts.values()) == 40
    finally:
        cluster.replace(dying)
        control.close()


def test_direct_access_lanes_hold_under_submissions_racing_through_both_nodes(
    cluster: Cluster,
) -> None:
    """Five lanes: six submissions at once through both API nodes, round after round, are
    five 204s and exactly one 429 (the lanes are counted under the backend's lock)."""
    token = bearer(cluster.api[0].url)
    clients = [httpx.Client(base_url=node.url, headers=token, timeout=60) for node in cluster.api]
    with object_server() as objects, ThreadPoolExecutor(max_workers=6) as pool:
        try:
            for _ in range(8):
                bodies = [job_body(objects, "ibm_fez") for _ in range(6)]
                start = threading.Barrier(6)

                def submit(
                    i: int, bodies: list[dict[str, Any]] = bodies, start: Any = start
                ) -> int:
                    start.wait()
                    return clients[i % 2].post("/v1/jobs", json=bodies[i]).status_code

                statuses = list(pool.map(submit, range(6)))
                assert sorted(statuses) == [204] * 5 + [429], statuses
                for body, status in zip(bodies, statuses, strict=True):
                    if status == 204:  # free the lane: the job fails (no input), then delete
                        wait_until(
                            lambda b=body: clients[0].get(f"/v1/jobs/{b['id']}").json()["status"]
                            != "Running",
                            timeout=120,
                        )
                        assert clients[1].delete(f"/v1/jobs/{body['id']}").status_code == 204
        finally:
            for client in clients:
                client.close()
