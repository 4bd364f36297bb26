"""The client's three noise learners against a server process: the legacy `NoiseLearner` and
`NoiseLearnerV3` (program `noise-learner`, models from the backend's calibration) and the
executor-based `NoiseLearnerV3` (learning circuits simulated, rates learned by the client)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import QiskitRuntimeService

pytestmark = pytest.mark.slow

# How far a layer's total Pauli error may be from the calibration's: 5/4 × the ECR's average
# gate error is the process infidelity the device model is built to (the twirl of its
# relaxation part moves it by a few per cent).
TOLERANCE = 0.10


@pytest.fixture(scope="module")
def brisbane(client_env: dict[str, str]):  # noqa: ANN201 - IBMBackend
    return QiskitRuntimeService().backend("ibm_brisbane")


def _ecr_pair(backend) -> tuple[int, int]:  # noqa: ANN001
    return next(tuple(q) for q in backend.target["ecr"] if tuple(q) in ((1, 0), (0, 1)))


def _pair_infidelity(backend, pair: tuple[int, int]) -> float:  # noqa: ANN001
    return 5 / 4 * backend.properties().gate_error("ecr", list(pair))


def test_legacy_noise_learner_models_each_layer_from_the_calibration(brisbane) -> None:  # noqa: ANN001
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime.noise_learner import NoiseLearner

    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.cx(0, 1)
    pm = generate_preset_pass_manager(
        backend=brisbane, optimization_level=0, initial_layout=[0, 1, 2]
    )
    learner = NoiseLearner(mode=brisbane)
    learner.options.max_layers_to_learn = 1
    learner.options.twirling_strategy = "active"
    result = learner.run([pm.run(circuit)]).result()
    assert len(result) == 1  # the most frequent of its two unique layers
    layer = result[0]
    assert sorted(layer.qubits) == [0, 1] and layer.circuit.count_ops() == {"ecr": 1}
    assert len(layer.error.generators) == 15  # X, Y, Z on each qubit, 9 on the pair
    pair = _ecr_pair(brisbane)
    total = float(np.sum(layer.error.rates))
    assert total == pytest.approx(_pair_infidelity(brisbane, pair), rel=TOLERANCE)
    assert result.metadata["input_options"]["twirling_strategy"] == "active"


def test_noise_learner_v3_gives_lindblad_and_trex_models(brisbane) -> None:  # noqa: ANN001
    from qiskit_ibm_runtime.noise_learner_v3 import NoiseLearnerV3
    from samplomatic import Twirl

    pair = _ecr_pair(brisbane)
    circuit = QuantumCircuit(brisbane.num_qubits, 2)
    with circuit.box([Twirl()]):
        circuit.ecr(*pair)
    with circuit.box([Twirl()]):
        circuit.measure(pair[0], 0)
        circuit.measure(pair[1], 1)
    results = NoiseLearnerV3(mode=brisbane).run(list(circuit.data)).result()
    lindblad, trex = results.data
    assert lindblad.metadata["learning_protocol"] == "lindblad"
    assert float(np.sum(lindblad._rates)) == pytest.approx(
        _pair_infidelity(brisbane, pair), rel=TOLERANCE
    )
    assert trex.metadata["learning_protocol"] == "trex"
    flips = [brisbane.properties().readout_error(q) for q in pair]
    expected = [-0.5 * math.log(1 - 2 * p) for p in flips]
    assert np.allclose(sorted(trex._rates), sorted(expected), rtol=0.01)


def test_executor_noise_learner_learns_rates_near_the_calibration(brisbane) -> None:  # noqa: ANN001
    from qiskit_ibm_runtime.executor_noise_learner import NoiseLearnerV3
    from samplomatic import Twirl

    pair = _ecr_pair(brisbane)
    circuit = QuantumCircuit(brisbane.num_qubits)
    with circuit.box([Twirl()]):
        circuit.ecr(*pair)
    learner = NoiseLearnerV3(mode=brisbane)
    learner.options.num_randomizations = 16
    learner.options.shots_per_randomization = 64
    learner.options.layer_pair_depths = [0, 2, 8, 16]
    learner.options.simulator.seed_simulator = 5
    results = learner.run(list(circuit.data)).result()
    (learned,) = results.data
    # Learned from simulated samples, so looser than the derived models: within a third.
    total = float(np.sum(learned._rates))
    assert total == pytest.approx(_pair_infidelity(brisbane, pair), rel=0.35)
