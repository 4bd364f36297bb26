"""Sessions and batches through the unmodified client: lifecycle, details, closing, expiry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import (
    Batch,
    EstimatorV2,
    QiskitRuntimeService,
    SamplerV2,
    Session,
)
from qiskit_ibm_runtime.exceptions import IBMInputValueError, IBMRuntimeError

from tests.circuits import bell, isa
from tests.conftest import bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorServer, service_for, wait_until

pytestmark = pytest.mark.slow

BACKEND = "fake_manila"


@pytest.fixture(scope="module")
def service(server: EmulatorServer) -> Iterator[QiskitRuntimeService]:
    with service_for(server) as svc:
        yield svc


@pytest.fixture(scope="module")
def idle_service(idle_server: EmulatorServer) -> Iterator[QiskitRuntimeService]:
    with service_for(idle_server) as svc:
        yield svc


def estimator_pub(backend: Any) -> tuple[QuantumCircuit, SparsePauliOp]:
    circuit = isa(backend, bell(measure=False))
    return circuit, SparsePauliOp("ZZ").apply_layout(circuit.layout)


def test_session_runs_sampler_and_estimator_then_closes(service: QiskitRuntimeService) -> None:
    backend = service.backend(BACKEND)
    with Session(backend=backend) as session:
        assert session.session_id
        assert session.details()["state"] == "open" and session.status() == "Pending"
        sampler = SamplerV2(mode=session)
        sampler.options.simulator.seed_simulator = 7
        first = sampler.run([isa(backend, bell())], shots=100)
        second = EstimatorV2(mode=session).run([estimator_pub(backend)])
        assert sum(first.result()[0].data.meas.get_counts().values()) == 100
        assert second.result()[0].data.evs > 0.8
        assert first.session_id == second.session_id == session.session_id
        details = session.details()
        assert details["mode"] == "dedicated" and details["backend_name"] == BACKEND
        assert details["state"] == "active" and details["accepting_jobs"] is True
        assert details["activated_at"] and details["last_job_completed"]
        assert session.status() == "In progress, accepting new jobs"
        assert session.usage() > 0  # elapsed_time adds up the jobs' execution time
    # Leaving the block PATCHes accepting_jobs false: with no job left, it closes at once.
    details = session.details()
    assert details["state"] == "closed" and details["accepting_jobs"] is False
    assert session.status() == "Closed" and details["closed_at"]


def test_batch_runs_jobs_in_batch_mode(service: QiskitRuntimeService) -> None:
    backend = service.backend(BACKEND)
    with Batch(backend=backend) as batch:
        sampler = SamplerV2(mode=batch)
        jobs = [sampler.run([isa(backend, bell())], shots=50) for _ in range(3)]
        for job in jobs:
            assert sum(job.result()[0].data.meas.get_counts().values()) == 50
        assert batch.details()["mode"] == "batch"
    again = Batch.from_id(batch.session_id, service)
    assert again.status() == "Closed"


def test_from_id_checks_the_mode(service: QiskitRuntimeService) -> None:
    backend = service.backend(BACKEND)
    session = Session(backend=backend)
    same = Session.from_id(session.session_id, service)
    assert same.session_id == session.session_id and same.details()["state"] == "open"
    with pytest.raises(IBMInputValueError, match="dedicated"):
        Batch.from_id(session.session_id, service)
    session.close()


def test_job_for_a_session_closed_on_the_server_is_refused(service: QiskitRuntimeService) -> None:
    backend = service.backend(BACKEND)
    session = Session(backend=backend)
    other_handle = Session.from_id(session.session_id, service)  # still believes it is open
    session.cancel()
    assert session.details()["state"] == "closed"
    with pytest.raises(IBMRuntimeError, match="409") as caught:
        SamplerV2(mode=other_handle).run([isa(backend, bell())])
    assert "1217" in str(caught.value) and session.session_id in str(caught.value)


def test_max_time_expiry_closes_the_session(
    service: QiskitRuntimeService, server: EmulatorServer
) -> None:
    backend = service.backend(BACKEND)
    session = Session(backend=backend, max_time=2)
    job = SamplerV2(mode=session).run([isa(backend, bell())], shots=10)
    job.result()
    details = wait_until(
        lambda: (d := session.details())["state"] == "closed" and d, timeout=30, interval=0.2
    )
    assert details["max_time"] == 2 and details["closed_at"]
    assert [t["status"] for t in details["timestamps"]][-1] == "closed"
    raw = httpx.get(
        f"{server.url}/api/v1/sessions/{session.session_id}", headers=bearer(server.url)
    ).json()
    assert "max_ttl" in raw["state_reason"]
    with pytest.raises(IBMRuntimeError, match="1217"):
        SamplerV2(mode=_reopened(session, service)).run([isa(backend, bell())])


def _reopened(session: Session, service: QiskitRuntimeService) -> Session:
    """A client-side handle that still thinks the session is open (as a stale process would)."""
    handle = Session.from_id(session.session_id, service)
    handle._active = True
    return handle


def test_cancel_cancels_queued_jobs(idle_service: QiskitRuntimeService) -> None:
    backend = idle_service.backend(BACKEND)
    session = Session(backend=backend)
    sampler = SamplerV2(mode=session)
    jobs = [sampler.run([isa(backend, bell())]) for _ in range(2)]
    assert all(job.status() == "QUEUED" for job in jobs)
    session.cancel()
    assert [job.status() for job in jobs] == ["CANCELLED", "CANCELLED"]
    assert session.status() == "Closed"


def test_session_http_errors(server: EmulatorServer) -> None:
    with httpx.Client(
        base_url=server.url + "/api/v1", headers=bearer(server.url), timeout=30
    ) as api:
        unknown = api.get("/sessions/nope")
        assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "1218"
        bad = api.post("/sessions", json={"mode": "turbo", "backend": BACKEND})
        assert bad.status_code == 400 and "mode" in bad.json()["errors"][0]["message"]
        bad = api.post("/sessions", json={"mode": "batch", "backend": "ibm_nowhere"})
        assert bad.status_code == 400 and "backend" in bad.json()["errors"][0]["message"]
        bad = api.post("/sessions", json={"mode": "batch", "backend": BACKEND, "max_ttl": 0})
        assert bad.status_code == 400 and "max_ttl" in bad.json()["errors"][0]["message"]
        created = api.post("/sessions", json={"mode": "batch", "backend": BACKEND}).json()
        patch = api.patch(f"/sessions/{created['id']}", json={"accepting_jobs": "no"})
        assert patch.status_code == 400 and "accepting_jobs" in patch.text
        job = api.post("/jobs", json=sampler_body(backend="ibm_fez", session_id=created["id"]))
        assert job.status_code == 409 and "fake_manila" in job.text
        job = api.post("/jobs", json=sampler_body(session_id="no-such-session"))
        assert job.status_code == 400 and "session_id" in job.text
        assert api.post("/jobs", json=sampler_body(session_id=created["id"])).status_code == 200
        assert api.delete(f"/sessions/{created['id']}/close").status_code == 204
        assert api.get(f"/sessions/{created['id']}").json()["state"] == "closed"
