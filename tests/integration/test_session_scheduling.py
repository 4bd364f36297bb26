"""How session jobs are scheduled: dedicated one at a time and first, batch in parallel.

Jobs here run for minutes (tests/circuits.long_running_circuit), so which ones are Running
at a moment is decided by the scheduler alone, never by timing; tests cancel them at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import RuntimeEncoder
from qiskit_ibm_runtime.fake_provider import FakeFez

from tests.circuits import long_running_circuit
from tests.conftest import bearer
from tests.support import EmulatorServer, wait_until

pytestmark = pytest.mark.slow

BACKEND = "ibm_fez"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path_factory.mktemp("scheduling"), workers=2).start()
    server.wait_workers_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(two_workers: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=two_workers.url + "/api/v1", headers=bearer(two_workers.url), timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
def long_params() -> Any:
    circuit = generate_preset_pass_manager(backend=FakeFez(), optimization_level=1).run(
        long_running_circuit()
    )
    return json.loads(
        json.dumps({"pubs": [[circuit, None, 1000]], "version": 2}, cls=RuntimeEncoder)
    )


def submit(api: httpx.Client, params: Any, session_id: str | None = None) -> str:
    body: dict[str, Any] = {"program_id": "sampler", "backend": BACKEND, "params": params}
    if session_id:
        body["session_id"] = session_id
    response = api.post("/jobs", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def status(api: httpx.Client, job_id: str) -> str:
    return str(api.get(f"/jobs/{job_id}").json()["status"])


def wait_status(api: httpx.Client, job_id: str, wanted: str) -> None:
    wait_until(lambda: status(api, job_id) == wanted, timeout=60, interval=0.1)


def new_session(api: httpx.Client, mode: str) -> str:
    response = api.post("/sessions", json={"mode": mode, "backend": BACKEND})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def cancel_all(api: httpx.Client, *job_ids: str) -> None:
    for job_id in job_ids:
        api.post(f"/jobs/{job_id}/cancel")


def test_dedicated_session_runs_one_job_at_a_time_in_order(
    api: httpx.Client, long_params: Any
) -> None:
    session = new_session(api, "dedicated")
    first, second, third = (submit(api, long_params, session) for _ in range(3))
    wait_status(api, first, "Running")
    # The other worker is free; it must skip the session's next jobs and take this one.
    plain = submit(api, long_params)
    wait_status(api, plain, "Running")
    assert [status(api, j) for j in (second, third)] == ["Queued", "Queued"]
    cancel_all(api, first)
    wait_status(api, second, "Running")
    assert status(api, third) == "Queued"
    assert api.delete(f"/sessions/{session}/close").status_code == 204
    assert status(api, third) == "Cancelled"
    cancel_all(api, second, plain)


def test_dedicated_session_jobs_go_ahead_of_older_jobs(api: httpx.Client, long_params: Any) -> None:
    busy = [submit(api, long_params) for _ in range(2)]
    for job_id in busy:
        wait_status(api, job_id, "Running")
    older = submit(api, long_params)
    session = new_session(api, "dedicated")
    newer_in_session = submit(api, long_params, session)
    cancel_all(api, busy[0])
    wait_status(api, newer_in_session, "Running")
    assert status(api, older) == "Queued"
    cancel_all(api, busy[1], older, newer_in_session)
    api.delete(f"/sessions/{session}/close")


def test_batch_runs_its_jobs_in_parallel(api: httpx.Client, long_params: Any) -> None:
    batch = new_session(api, "batch")
    jobs = [submit(api, long_params, batch) for _ in range(2)]
    for job_id in jobs:
        wait_status(api, job_id, "Running")
    details = api.get(f"/sessions/{batch}").json()
    assert details["state"] == "active" and details["mode"] == "batch"
    cancel_all(api, *jobs)
    api.delete(f"/sessions/{batch}/close")
