"""The unmodified `qrmi` client against a server subprocess, configured only by `env --qrmi`.

qrmi reaches IAM, the Direct Access API and the built-in S3 store all on the emulator's port.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from tests.circuits import long_running_circuit
from tests.support import EmulatorServer, applied_env, emulator_env, wait_until

qrmi = pytest.importorskip("qrmi")
from qrmi import Payload, QuantumResource, ResourceType, TaskStatus  # noqa: E402
from qrmi.primitives.ibm import EstimatorV2, SamplerV2, get_backend  # noqa: E402

BACKEND = "ibm_fez"
SEED = {"simulator": {"seed_simulator": 1234}}


@pytest.fixture(scope="module")
def qrmi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path_factory.mktemp("qrmi"), workers=2).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def qrmi_env(qrmi_server: EmulatorServer) -> Iterator[dict[str, str]]:
    """Apply the `env --qrmi` exports to this process, where qrmi reads them."""
    values = emulator_env(qrmi_server.url, "--qrmi", BACKEND, "--job-timeout", "120")
    assert all(k.startswith(f"{BACKEND}_QRMI_") for k in values if "QRMI" in k)
    with applied_env(values):
        yield values


@pytest.fixture(scope="module")
def resource(qrmi_env: dict[str, str]) -> QuantumResource:
    return QuantumResource(BACKEND, ResourceType.IBMQuantumSystem)


@pytest.fixture(scope="module")
def isa_bell(resource: QuantumResource) -> QuantumCircuit:
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    backend = get_backend(resource)
    return generate_preset_pass_manager(backend=backend, optimization_level=1).run(bell)


def da_jobs(env: dict[str, str]) -> list[dict[str, Any]]:
    """The caller's Direct Access jobs, seen over plain HTTP with the same credentials."""
    base = env[f"{BACKEND}_QRMI_IBM_QS_ENDPOINT"]
    token = httpx.post(
        env[f"{BACKEND}_QRMI_IBM_QS_IAM_ENDPOINT"] + "/identity/token",
        data={
            "grant_type": "urn:ibm:params:oauth:grant-type:apikey",
            "apikey": env[f"{BACKEND}_QRMI_IBM_QS_IAM_APIKEY"],
        },
    ).json()["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "Service-CRN": env[f"{BACKEND}_QRMI_IBM_QS_SERVICE_CRN"],
    }
    return httpx.get(base + "/v1/jobs", headers=headers).json()["jobs"]


def test_env_points_every_endpoint_at_the_emulator(
    qrmi_env: dict[str, str], qrmi_server: EmulatorServer
) -> None:
    names = {
        "ENDPOINT",
        "IAM_ENDPOINT",
        "IAM_APIKEY",
        "SERVICE_CRN",
        "S3_ENDPOINT",
        "S3_BUCKET",
        "S3_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert {f"{BACKEND}_QRMI_IBM_QS_{n}" for n in names} <= set(qrmi_env)
    assert qrmi_env[f"{BACKEND}_QRMI_JOB_TIMEOUT_SECONDS"] == "120"
    for name in ("ENDPOINT", "IAM_ENDPOINT", "S3_ENDPOINT"):
        assert qrmi_env[f"{BACKEND}_QRMI_IBM_QS_{name}"].startswith(qrmi_server.url)
    assert qrmi_env["IAM_URL"].startswith(qrmi_server.url)  # the Runtime exports come too


def test_status_and_target(resource: QuantumResource) -> None:
    assert resource.is_accessible()
    status = resource.status().to_dict()
    assert status["status"] == "online" and not status["busy"], status
    assert status["capacity"] == {"max_slots": 5, "available_slots": 5}  # default lanes
    target = json.loads(resource.target().value)
    assert target["configuration"]["backend_name"] == BACKEND
    assert target["properties"]["backend_name"] == BACKEND
    assert get_backend(resource).num_qubits == 156


def test_sampler_bell(
    resource: QuantumResource, isa_bell: QuantumCircuit, qrmi_env: dict[str, str]
) -> None:
    sampler = SamplerV2(resource, options={"run_options": SEED})
    job = sampler.run([isa_bell], shots=2000)
    result = job.result()
    counts = result[0].data.meas.get_counts()
    assert sum(counts.values()) == 2000
    assert 800 < counts.get("00", 0) < 1200 and 800 < counts.get("11", 0) < 1200
    assert counts.get("00", 0) + counts.get("11", 0) > 1800  # noise is small on a Bell pair
    logs = job.logs()
    assert isinstance(logs, str) and job.job_id() in logs  # qrmi asks for debug level
    job.cancel()  # qrmi's cancel is task_stop: the finished job is deleted
    assert job.job_id() not in {j["id"] for j in da_jobs(qrmi_env)}


def test_estimator_bell(resource: QuantumResource, isa_bell: QuantumCircuit) -> None:
    circuit = isa_bell.remove_final_measurements(inplace=False)
    observables = SparsePauliOp.from_list([("ZZ", 1.0), ("XX", 1.0), ("ZI", 1.0)])
    isa_observables = observables.apply_layout(circuit.layout)
    estimator = EstimatorV2(resource, options={"run_options": {"seed_estimator": 5, **SEED}})
    job = estimator.run([(circuit, isa_observables)])
    evs = job.result()[0].data.evs
    assert evs.shape == () or evs.shape == (1,)
    # <ZZ> + <XX> + <ZI> = 1 + 1 + 0 on a Bell state, less a little noise.
    assert 1.6 < float(evs) < 2.2
    job.cancel()


def test_task_api_logs_and_stop_of_a_running_job(
    resource: QuantumResource, qrmi_env: dict[str, str]
) -> None:
    backend = get_backend(resource)
    circuit = generate_preset_pass_manager(backend=backend, optimization_level=1).run(
        long_running_circuit()
    )
    sampler = SamplerV2(resource)
    job = sampler.run([circuit], shots=1000)
    job_id = job.job_id()
    wait_until(lambda: resource.task_status(job_id) == TaskStatus.Running, timeout=60)
    resource.task_stop(job_id)  # Running → cancel, then delete
    assert job_id not in {j["id"] for j in da_jobs(qrmi_env)}
    job._delete_job = False  # already deleted; its destructor would try again


def test_failed_job_reports_its_reason(resource: QuantumResource) -> None:
    bad = json.dumps(
        {"pubs": [["OPENQASM 3.0; this is not qasm;", None, 10]], "version": 2, "options": {}}
    )
    job_id = resource.task_start(Payload.QiskitPrimitive(input=bad, program_id="sampler"))
    wait_until(lambda: resource.task_status(job_id) in {TaskStatus.Failed}, timeout=60)
    with pytest.raises(Exception, match=r"(?i)qasm|invalid|pubs"):
        resource.task_result(job_id)
    assert resource.task_logs(job_id)  # failures are always logged
    resource.task_stop(job_id)
