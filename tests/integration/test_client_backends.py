"""What the unmodified client reads of a backend beyond its documents: `physical_qubits` from
the list, the `dynamic_circuits` feature it filters on, and calibration ids (the emulator
serves one per backend; another id is IBM's not-found)."""

from __future__ import annotations

import httpx
import pytest
from qiskit.providers.exceptions import QiskitBackendNotFoundError
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

from tests.circuits import bell, isa
from tests.support import EmulatorServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(client_env: dict[str, str]) -> QiskitRuntimeService:
    return QiskitRuntimeService()


def calibration_of(server: EmulatorServer, name: str) -> str:
    backends = httpx.get(f"{server.url}/_emulator/backends").json()["backends"]
    return next(b["calibration_id"] for b in backends if b["name"] == name)


def test_backends_carry_physical_qubits(service: QiskitRuntimeService) -> None:
    assert service.backend("ibm_brisbane").physical_qubits == 127
    assert service.backend("ibm_fez").physical_qubits == 156


def test_backends_that_run_control_flow_are_dynamic_circuit_backends(
    service: QiskitRuntimeService,
) -> None:
    dynamic = {b.name for b in service.backends(dynamic_circuits=True)}
    assert {"ibm_brisbane", "ibm_fez"} <= dynamic
    assert not dynamic & {b.name for b in service.backends(dynamic_circuits=False)}


def test_a_pinned_calibration_is_served_and_sent_with_jobs(
    server: EmulatorServer, service: QiskitRuntimeService, api: httpx.Client
) -> None:
    calibration = calibration_of(server, "ibm_brisbane")
    assert calibration == calibration_of(server, "ibm_brisbane")  # stable
    backend = service.backend("ibm_brisbane", calibration_id=calibration)
    assert backend.calibration_id == calibration
    job = SamplerV2(mode=backend).run([isa(backend, bell())], shots=100)
    assert sum(job.result()[0].data.meas.get_counts().values()) == 100
    assert api.get(f"/jobs/{job.job_id()}").json()["calibration_id"] == calibration


def test_an_unknown_calibration_is_not_found(
    service: QiskitRuntimeService, api: httpx.Client
) -> None:
    for document in ("configuration", "properties"):
        response = api.get(f"/backends/ibm_brisbane/{document}", params={"calibration_id": "x1"})
        assert response.status_code == 404
        (error,) = response.json()["errors"]
        assert error["code"] == "1009" and "No calibration x1 for ibm_brisbane" in error["message"]
    with pytest.raises(QiskitBackendNotFoundError):  # the client drops what it cannot fetch
        service.backend("ibm_brisbane", calibration_id="x1")
    refused = api.post(
        "/jobs",
        json={
            "program_id": "sampler",
            "backend": "ibm_brisbane",
            "calibration_id": "x1",
            "params": {"pubs": [], "version": 2},
        },
    )
    assert refused.status_code == 400 and "calibration_id" in refused.text


def test_dry_run_backends_and_jobs_are_shown_only_with_include_mocks(
    service: QiskitRuntimeService, api: httpx.Client
) -> None:
    assert "mock_fez" not in {b.name for b in service.backends()}
    assert "mock_fez" in {b.name for b in service.backends(include_mocks=True)}
    assert "mock_fez" not in {d["name"] for d in api.get("/backends").json()["devices"]}
    fez = service.backend("ibm_fez")
    job = SamplerV2(mode=fez).run([isa(fez, bell())], shots=20, dry_run=True)
    job.result()
    assert job.backend().name == "mock_fez"
    assert job.job_id() not in {j.job_id() for j in service.jobs(limit=None)}
    assert job.job_id() in {j.job_id() for j in service.jobs(limit=None, include_mocks=True)}
    named = api.get("/jobs", params={"backend": "mock_fez"}).json()["jobs"]
    assert job.job_id() in {j["id"] for j in named}  # a filter that names the mock shows it


def test_a_dry_run_answers_randomized_data_in_every_programs_shape(
    service: QiskitRuntimeService,
) -> None:
    import numpy as np
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime import EstimatorV2
    from qiskit_ibm_runtime.executor_sampler import Sampler
    from qiskit_ibm_runtime.noise_learner import NoiseLearner

    fez = service.backend("ibm_fez")
    circuit = isa(fez, bell())
    job = SamplerV2(mode=fez).run([circuit], shots=2000, dry_run=True)
    counts = job.result()[0].data.meas.get_counts()
    # A Bell pair never reads 01 or 10; uniformly random bits do, a quarter of the time each.
    assert sum(counts.values()) == 2000 and counts.get("01", 0) > 300 and counts.get("10", 0) > 300
    assert any("randomized mock data" in line for line in job.logs().splitlines())
    # The usage is the QPU time estimate: 2000 shots of (the circuit + 250 µs) is at least 0.5 s.
    assert job.usage() >= 0.5

    unmeasured = isa(fez, bell(measure=False))
    zz = SparsePauliOp("ZZ").apply_layout(unmeasured.layout)
    estimate = EstimatorV2(mode=fez).run([(unmeasured, [zz, zz])], dry_run=True).result()[0]
    assert estimate.data.evs.shape == (2,) and np.all(np.abs(estimate.data.evs) <= 1)
    assert estimate.metadata["shots"] == 4096

    program = Sampler(mode=fez).run([circuit], shots=64, dry_run=True).result()
    assert program[0].data.meas.num_shots == 64

    layers = NoiseLearner(mode=fez).run([circuit], dry_run=True).result()
    assert len(layers) == 1 and np.all(layers[0].error.rates >= 0)
