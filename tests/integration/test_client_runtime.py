"""The unmodified qiskit-ibm-runtime client against a server process, configured only by `env`."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import EstimatorV2, QiskitRuntimeService, SamplerV2
from qiskit_ibm_runtime.exceptions import (
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobNotFound,
)

from tests.circuits import bell, isa

pytestmark = pytest.mark.slow

SEED = 1234


@pytest.fixture(scope="module")
def service(client_env: dict[str, str]) -> QiskitRuntimeService:
    return QiskitRuntimeService()


@pytest.fixture(scope="module")
def brisbane(service: QiskitRuntimeService):  # noqa: ANN201 - IBMBackend
    return service.backend("ibm_brisbane")


def assert_bell_counts(counts: dict[str, int], shots: int) -> None:
    assert sum(counts.values()) == shots
    correlated = counts.get("00", 0) + counts.get("11", 0)
    assert correlated / shots > 0.9, counts
    assert 0.35 < counts.get("00", 0) / shots < 0.65, counts


def test_service_sees_the_configured_backends(service: QiskitRuntimeService) -> None:
    names = {b.name for b in service.backends()}
    assert {"ibm_brisbane", "ibm_fez", "fake_manila"} <= names
    assert service.backend("ibm_fez").num_qubits == 156
    assert service.least_busy().name in names


def test_legacy_sampler_bell_is_seeded_and_correlated(brisbane) -> None:  # noqa: ANN001
    circuit = isa(brisbane, bell())
    assert circuit.num_qubits == 127
    sampler = SamplerV2(mode=brisbane)
    sampler.options.simulator.seed_simulator = SEED
    first = sampler.run([circuit], shots=1000).result()[0].data.meas.get_counts()
    second = sampler.run([circuit], shots=1000).result()[0].data.meas.get_counts()
    assert_bell_counts(first, 1000)
    assert first == second  # seeded: exactly reproducible


def test_executor_sampler_bell(brisbane) -> None:  # noqa: ANN001
    from qiskit_ibm_runtime.executor_sampler import Sampler

    sampler = Sampler(mode=brisbane)
    job = sampler.run([isa(brisbane, bell())], shots=800)
    counts = job.result()[0].data.meas.get_counts()
    assert_bell_counts(counts, 800)


def zz_pub(backend):  # noqa: ANN001, ANN201
    circuit = isa(backend, bell(measure=False))
    return circuit, SparsePauliOp("ZZ").apply_layout(circuit.layout)


def test_legacy_estimator_zz_on_bell(brisbane) -> None:  # noqa: ANN001
    estimator = EstimatorV2(mode=brisbane)
    estimator.options.seed_estimator = SEED
    value = float(estimator.run([zz_pub(brisbane)]).result()[0].data.evs)
    assert 0.85 < value <= 1.1


def test_legacy_estimator_zne_options_decode_with_their_extrapolations(brisbane) -> None:  # noqa: ANN001
    estimator = EstimatorV2(mode=brisbane)
    estimator.options.seed_estimator = SEED
    estimator.options.resilience_level = 2
    estimator.options.resilience.zne.noise_factors = (1, 3, 5)
    estimator.options.resilience.zne.extrapolator = "linear"
    estimator.options.twirling.num_randomizations = 4
    estimator.options.twirling.shots_per_randomization = 256
    result = estimator.run([zz_pub(brisbane)]).result()
    pub = result[0]
    assert 0.85 < float(pub.data.evs) < 1.15
    assert pub.data.evs_noise_factors.shape == (3,)
    assert pub.metadata["num_randomizations"] == 4 and pub.metadata["shots"] == 4096
    assert result.metadata["resilience"]["zne_mitigation"] is True
    assert result.metadata["twirling"]["enable_gates"] is True


def test_an_option_the_emulator_cannot_simulate_is_a_400_naming_it(brisbane) -> None:  # noqa: ANN001
    from qiskit_ibm_runtime.exceptions import IBMRuntimeError

    estimator = EstimatorV2(mode=brisbane)
    estimator.options.resilience.pec_mitigation = True
    with pytest.raises(IBMRuntimeError, match="pec_mitigation") as caught:
        estimator.run([zz_pub(brisbane)])
    assert "400" in str(caught.value)


def test_executor_estimator_zz_on_bell(brisbane) -> None:  # noqa: ANN001
    from qiskit_ibm_runtime.executor_estimator import Estimator

    estimator = Estimator(mode=brisbane)
    value = float(np.asarray(estimator.run([zz_pub(brisbane)]).result()[0].data.evs))
    assert 0.8 < value <= 1.1


def test_parametric_pub_with_three_bindings(brisbane) -> None:  # noqa: ANN001
    theta = Parameter("theta")
    qc = QuantumCircuit(1)
    qc.ry(theta, 0)
    qc.measure_all()
    sampler = SamplerV2(mode=brisbane)
    sampler.options.simulator.seed_simulator = SEED
    values = np.array([[0.0], [np.pi / 2], [np.pi]])
    result = sampler.run([(isa(brisbane, qc), values)], shots=400).result()[0]
    assert result.data.meas.shape == (3,)
    ones = [result.data.meas[i].get_counts().get("1", 0) / 400 for i in range(3)]
    assert ones[0] < 0.1 and 0.35 < ones[1] < 0.65 and ones[2] > 0.9


def test_job_status_logs_metrics_tags_and_lookup(service: QiskitRuntimeService, brisbane) -> None:  # noqa: ANN001
    sampler = SamplerV2(mode=brisbane)
    sampler.options.environment.job_tags = ["client-test"]
    job = sampler.run([isa(brisbane, bell())], shots=100)
    job.result()
    assert job.status() == "DONE"
    assert "completed" in job.logs().lower()
    metrics = job.metrics()
    assert metrics["timestamps"]["running"] and metrics["timestamps"]["finished"]
    assert job.usage() > 0
    job.update_tags(["client-test", "renamed"])
    assert sorted(job.tags) == ["client-test", "renamed"]
    again = service.job(job.job_id())
    assert again.status() == "DONE" and again.primitive_id == "sampler"
    assert again.result()[0].data.meas.num_shots == 100
    assert again.inputs["pubs"]
    listed = service.jobs(limit=None, job_tags=["renamed"])
    assert [j.job_id() for j in listed] == [job.job_id()]
    assert job.job_id() in [
        j.job_id() for j in service.jobs(backend_name="ibm_brisbane", pending=False)
    ]


def test_delete_job_then_not_found(service: QiskitRuntimeService, brisbane) -> None:  # noqa: ANN001
    job = SamplerV2(mode=brisbane).run([isa(brisbane, bell())], shots=10)
    job.result()
    service.delete_job(job.job_id())
    with pytest.raises(RuntimeJobNotFound):
        service.job(job.job_id())


def test_unknown_job_raises_runtime_job_not_found(service: QiskitRuntimeService) -> None:
    with pytest.raises(RuntimeJobNotFound):
        service.job("d0000000000000000000")


def test_cancel_finished_job_raises_invalid_state(brisbane) -> None:  # noqa: ANN001
    job = SamplerV2(mode=brisbane).run([isa(brisbane, bell())], shots=10)
    job.result()
    with pytest.raises(RuntimeInvalidStateError):
        job.cancel()


def test_failing_job_raises_failure_error_with_reason(brisbane) -> None:  # noqa: ANN001
    from tests.circuits import memory_failure_circuit

    job = SamplerV2(mode=brisbane).run([memory_failure_circuit(brisbane.target)], shots=10)
    with pytest.raises(RuntimeJobFailureError) as failure:
        job.result()
    assert job.status() == "ERROR"
    assert "Error code 1517" in str(failure.value)
    assert "Insufficient memory" in str(failure.value)
    assert "Insufficient memory" in job.error_message()
    assert "failed" in job.logs().lower()


def test_kerneled_measurements_decode_as_complex_iq_points(brisbane) -> None:  # noqa: ANN001
    sampler = SamplerV2(mode=brisbane)
    sampler.options.execution.meas_type = "kerneled"
    sampler.options.simulator.seed_simulator = SEED
    iq = sampler.run([isa(brisbane, bell())], shots=500).result()[0].data.meas
    assert iq.shape == (500, 2) and np.iscomplexobj(iq)
    bits = iq.real < 0  # |1> is the centre at -1
    assert np.mean(bits[:, 0] == bits[:, 1]) > 0.85  # still a Bell pair
