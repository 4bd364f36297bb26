"""Utility-scale circuits through the unmodified client, as IBM's tutorials submit them: a
127-qubit GHZ on `ibm_brisbane` runs on the stabilizer path in seconds (a statevector would
need 2^127 amplitudes), and the job log and result metadata say which method ran and why."""

from __future__ import annotations

import re

import numpy as np
import pytest
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

from tests.circuits import dense_circuit, ghz, isa, trotter_circuit

pytestmark = pytest.mark.slow


def test_a_127_qubit_noisy_ghz_runs_on_the_stabilizer(client_env: dict[str, str]) -> None:
    backend = QiskitRuntimeService().backend("ibm_brisbane")
    circuit = isa(backend, ghz(127))
    sampler = SamplerV2(mode=backend)
    sampler.options.simulator.seed_simulator = 7
    job = sampler.run([circuit], shots=2000)
    result = job.result()
    meas = result[0].data.meas
    assert (meas.num_bits, meas.num_shots) == (127, 2000)
    weights = meas.bitcount()
    # With the device's own noise (~200 ECRs, 127 readouts at ~1-3 % each) no shot need be
    # all-0 or all-1; a GHZ still leaves many shots near them (uniform random bits: none).
    assert np.mean((weights <= 12) | (weights >= 115)) > 0.05
    assert abs(weights.mean() / 127 - 0.5) < 0.05
    assert result.metadata["simulator"]["method"] == "stabilizer"
    assert "Pauli-twirled" in result.metadata["simulator"]["noise"]
    assert "method: stabilizer (auto: Clifford circuits on 127 qubits)" in job.logs()


def test_a_wide_dense_non_clifford_job_is_refused_before_it_runs(
    client_env: dict[str, str],
) -> None:
    from qiskit_ibm_runtime import RuntimeJobFailureError

    backend = QiskitRuntimeService().backend("ibm_brisbane")
    # 22 qubits (a few more once routed): a statevector that fits a worker, but 4,096 noisy
    # trajectories do not fit in any reasonable time (a wider state would be refused for
    # memory instead), and it entangles too much for the MPS.
    job = SamplerV2(mode=backend).run([isa(backend, dense_circuit(22))])
    with pytest.raises(RuntimeJobFailureError) as failed:
        job.result()  # refused at once: no long timeout needed
    message = str(failed.value)
    assert re.search(r"statevector of \d+ qubits", message) and "--max-job-seconds" in message
    # The log says what the program found before the refusal: its pubs, method and noise.
    logs = job.logs()
    assert "sampler: 1 pub(s) on ibm_brisbane" in logs
    assert "method: statevector (auto: not a Clifford circuit" in logs
    assert logs.index("method: statevector") < logs.index("Job failed")


def test_a_127_qubit_clifford_estimator_with_ten_pauli_observables(
    client_env: dict[str, str],
) -> None:
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime import EstimatorV2

    backend = QiskitRuntimeService().backend("ibm_brisbane")
    circuit = isa(backend, ghz(127, measure=False))
    # Neighbouring ZZ pairs along the chain, then the two ends.
    labels = ["I" * (125 - k) + "ZZ" + "I" * k for k in range(9)] + ["Z" + "I" * 125 + "Z"]
    observables = [SparsePauliOp(label).apply_layout(circuit.layout) for label in labels]
    estimator = EstimatorV2(mode=backend)
    estimator.options.seed_estimator = 3
    job = estimator.run([(circuit, observables)])
    evs = job.result()[0].data.evs
    assert len(evs) == 10 and all(0.85 < value <= 1.0 for value in evs[:9])
    assert evs[9] < 0.5  # the chain's ends: their correlation does not survive ~200 ECRs
    assert "method: stabilizer" in job.logs()


def test_a_60_qubit_shallow_non_clifford_circuit_runs_on_the_mps(
    client_env: dict[str, str],
) -> None:
    backend = QiskitRuntimeService().backend("ibm_brisbane")
    sampler = SamplerV2(mode=backend)
    sampler.options.simulator.seed_simulator = 3
    job = sampler.run([isa(backend, trotter_circuit(60))], shots=400)
    result = job.result()
    meas = result[0].data.meas
    assert (meas.num_bits, meas.num_shots) == (60, 400)
    assert result.metadata["simulator"]["method"] == "matrix_product_state"
    assert "noise realizations" in result.metadata["simulator"]["noise"]
    assert "method: matrix_product_state (auto: not a Clifford circuit" in job.logs()
    # Weak rotations leave most qubits 0; device noise and readout add a few flips.
    assert 1 < meas.bitcount().mean() < 20
