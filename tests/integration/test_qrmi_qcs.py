"""qrmi's Runtime resource (`ResourceType.IBMQuantumComputeService`), unmodified, against a
server subprocess configured only by `env --qrmi-qcs`: acquire opens a session, Sampler and
Estimator tasks run in it, status, result and logs read back, release closes it.

qrmi's client is generated from IBM's spec, which types a job's result as a string: the
emulator serves results as text, which qiskit-ibm-runtime reads the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from tests.conftest import bearer
from tests.support import EmulatorServer, applied_env, emulator_env, wait_until

qrmi = pytest.importorskip("qrmi")
from qrmi import Payload, QuantumResource, ResourceType, TaskStatus  # noqa: E402
from qrmi.primitives.ibm import EstimatorV2, SamplerV2, get_backend  # noqa: E402

pytestmark = pytest.mark.slow

BACKEND = "ibm_fez"


@pytest.fixture(scope="module")
def qcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path_factory.mktemp("qcs"), workers=2).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def qcs_env(qcs_server: EmulatorServer) -> Iterator[dict[str, str]]:
    values = emulator_env(qcs_server.url, "--qrmi-qcs", BACKEND, "--job-timeout", "120")
    with applied_env(values):
        yield values


@pytest.fixture(scope="module")
def runtime(qcs_server: EmulatorServer, qcs_env: dict[str, str]) -> Iterator[httpx.Client]:
    headers = {
        **bearer(qcs_server.url, qcs_env["QISKIT_IBM_TOKEN"]),
        "Service-CRN": qcs_env[f"{BACKEND}_QRMI_IBM_QCS_SERVICE_CRN"],
    }
    with httpx.Client(base_url=qcs_server.url + "/api/v1", headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def resource(qcs_env: dict[str, str]) -> QuantumResource:
    return QuantumResource(BACKEND, ResourceType.IBMQuantumComputeService)


def isa_bell(resource: QuantumResource, measure: bool = True) -> QuantumCircuit:
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    if measure:
        bell.measure_all()
    backend = get_backend(resource)
    return generate_preset_pass_manager(backend=backend, optimization_level=1).run(bell)


def test_env_points_qrmis_runtime_resource_at_the_emulator(
    qcs_env: dict[str, str], qcs_server: EmulatorServer
) -> None:
    assert qcs_env[f"{BACKEND}_QRMI_IBM_QCS_ENDPOINT"] == qcs_server.url + "/api/v1"
    assert qcs_env[f"{BACKEND}_QRMI_IBM_QCS_IAM_ENDPOINT"] == qcs_server.url + "/iam"
    assert qcs_env[f"{BACKEND}_QRMI_IBM_QCS_TIMEOUT_SECONDS"] == "120"


def test_a_session_with_sampler_and_estimator_tasks(
    resource: QuantumResource, runtime: httpx.Client
) -> None:
    assert resource.is_accessible()
    session_id = resource.acquire()
    assert runtime.get(f"/sessions/{session_id}").json()["state"] == "open"
    try:
        sampler = SamplerV2(resource, options={"run_options": {"seed_simulator": 7}})
        job = sampler.run([isa_bell(resource)], shots=400)
        counts = job.result()[0].data.meas.get_counts()
        assert sum(counts.values()) == 400
        assert counts.get("00", 0) + counts.get("11", 0) > 360
        assert runtime.get(f"/jobs/{job.job_id()}").json()["session_id"] == session_id

        circuit = isa_bell(resource, measure=False)
        observables = SparsePauliOp.from_list([("ZZ", 1.0), ("XX", 1.0)])
        estimator = EstimatorV2(resource, options={"run_options": {"seed_estimator": 5}})
        evs = estimator.run([(circuit, observables.apply_layout(circuit.layout))]).result()
        assert 1.6 < float(evs[0].data.evs) < 2.2  # <ZZ> + <XX> = 2, less a little noise
    finally:
        resource.release(session_id)
    assert runtime.get(f"/sessions/{session_id}").json()["accepting_jobs"] is False


def test_the_task_api_status_result_and_logs(resource: QuantumResource) -> None:
    circuit = isa_bell(resource)
    from qiskit_ibm_runtime import RuntimeEncoder

    params = json.dumps({"pubs": [[circuit, None, 50]], "version": 2}, cls=RuntimeEncoder)
    task = resource.task_start(Payload.QiskitPrimitive(input=params, program_id="sampler"))
    wait_until(lambda: resource.task_status(task) == TaskStatus.Completed, timeout=60)
    result = resource.task_result(task).value
    assert '"__type__": "PrimitiveResult"' in result  # the text, as qrmi's client reads it
    assert resource.task_logs(task)
    resource.task_stop(task)
