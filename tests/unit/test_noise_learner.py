"""The `noise-learner` program: layer models from the calibration, layers, options, refusals."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import PauliLindbladMap, QubitSparsePauli
from qiskit_ibm_runtime import RuntimeEncoder
from qiskit_ibm_runtime.decoders.noise_learner import NoiseLearnerResultDecoder

from emulator.domain.snapshots import load_snapshot
from emulator.simulation import InvalidParams, run_program, validate_params
from emulator.simulation.noise import backend_target
from emulator.simulation.noise_learner import _edges, layer_model, learned_layers
from emulator.simulation.stabilizer import PauliNoise, pauli_signs

BRISBANE = load_snapshot("ibm_brisbane", "brisbane")
TARGET = backend_target(BRISBANE)


def _chain() -> QuantumCircuit:
    """ecr layers (1,0), (2,1), (1,0) on device qubits 0-2, and qubit 3 touched by an X."""
    circuit = QuantumCircuit(4)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.cx(0, 1)
    circuit.x(3)
    return transpile(circuit, target=TARGET, initial_layout=[0, 1, 2, 3], optimization_level=0)


def test_the_rates_reproduce_the_twirled_gate_channel_exactly() -> None:
    noise = PauliNoise(TARGET)
    model = layer_model(noise, [("ecr", (1, 0))], [0, 1], _edges(TARGET))
    channel = PauliLindbladMap.from_list(list(zip(model.labels(), model.rates(), strict=True)))
    fidelities = pauli_signs(2) @ noise.probabilities("ecr", (1, 0))
    for a in range(4):
        for b in range(4):
            # index 4a+b: a on the gate's first qubit (device 1, label position 1), b on 0.
            label = "IXYZ"[a] + "IXYZ"[b]
            expected = fidelities[4 * a + b]
            assert channel.pauli_fidelity(QubitSparsePauli.from_label(label)) == pytest.approx(
                expected, rel=1e-9
            )


ECR_10, ECR_21 = (("ecr", (1, 0)),), (("ecr", (2, 1)),)


@pytest.mark.parametrize(
    ("strategy", "layers"),
    [
        ("active", [(ECR_10, [0, 1]), (ECR_21, [1, 2])]),
        # The third layer repeats the first's gates on the qubits accumulated by then: as on
        # IBM (its integration test expects three layers of these circuits), a layer of its own.
        ("active-accum", [(ECR_10, [0, 1]), (ECR_21, [0, 1, 2]), (ECR_10, [0, 1, 2])]),
        ("active-circuit", [(ECR_10, [0, 1, 2, 3]), (ECR_21, [0, 1, 2, 3])]),
    ],
)
def test_layers_are_unique_most_frequent_first_on_the_strategys_qubits(
    strategy: str, layers: list[tuple[object, list[int]]]
) -> None:
    found = learned_layers([_chain()], strategy, None)
    assert [(gates, chosen) for gates, chosen, _ in found] == layers
    assert len(learned_layers([_chain()], strategy, 1)) == 1


def test_idle_qubits_of_a_layer_relax_and_uncoupled_pairs_have_no_rate() -> None:
    model = layer_model(PauliNoise(TARGET), ECR_21, [0, 1, 2], _edges(TARGET))
    rates = dict(zip(model.labels(), model.rates(), strict=True))
    # Labels read right to left: position 0 (device qubit 0) is the last character.
    assert rates["IIZ"] > 0 and rates["IIX"] > 0  # qubit 0 idles for the ECR's 660 ns
    assert "ZIZ" not in rates  # qubits 0 and 2 are not coupled on brisbane
    assert rates["IZZ"] == 0.0  # the (0, 1) pair is coupled, but no gate joins it here
    assert "ZZI" in rates  # the gate's own pair, (2, 1)


def _legacy(**options: Any) -> dict[str, Any]:
    body = {"circuits": [_chain()], "options": {"support_qiskit": True, **options}}
    return json.loads(json.dumps(body, cls=RuntimeEncoder))


def test_the_legacy_result_decodes_with_the_clients_decoder() -> None:
    out = run_program("noise-learner", json.dumps(_legacy(max_layers_to_learn=None)), BRISBANE)
    result = NoiseLearnerResultDecoder.decode(out.result)
    assert [layer.qubits for layer in result] == [[0, 1], [0, 1, 2], [0, 1, 2]]
    assert all(np.all(layer.error.rates >= 0) for layer in result)
    assert result.metadata["input_options"]["max_layers_to_learn"] is None
    assert any("no learning circuits run" in line for line in out.log)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"options": {}}, "params.circuits"),
        ({"circuits": []}, "params.circuits"),
        ({"circuits": [1]}, "params.circuits[0]"),
        (_legacy(twirling_strategy="some"), "params.options.twirling_strategy"),
        (_legacy(max_layers_to_learn=-1), "params.options.max_layers_to_learn"),
        (_legacy(num_randomizations=0), "params.options.num_randomizations"),
        (_legacy(layer_pair_depths=[0, -2]), "params.options.layer_pair_depths[1]"),
        ({"schema_version": "v9.0"}, "params.schema_version"),
        ({"schema_version": "v0.3", "options": {}}, "params.instructions"),
    ],
)
def test_invalid_noise_learner_params_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        validate_params("noise-learner", params, BRISBANE)
    assert caught.value.field == field


def test_qrmis_program_name_is_the_same_program() -> None:
    """qrmi's Runtime client submits the noise learner as `noiselearner`."""
    out = run_program("noiselearner", json.dumps(_legacy()), BRISBANE)
    assert len(NoiseLearnerResultDecoder.decode(out.result)) == 3
