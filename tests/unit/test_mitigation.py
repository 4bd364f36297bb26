"""Estimator error mitigation: resilience levels, TREX, ZNE and the options that are refused."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from emulator.domain.snapshots import load_snapshot
from emulator.simulation import InvalidParams, ProgramFailure, run_program, validate_params
from emulator.simulation.noise import backend_target
from tests.circuits import ghz, noisy_bell

BRISBANE = load_snapshot("ibm_brisbane", "brisbane")


def _noisy_bell() -> tuple[QuantumCircuit, SparsePauliOp]:
    """A Bell pair followed by four identity CX pairs on two neighbours: ten noisy ECRs, so
    both readout and gate errors pull ⟨ZZ⟩ well below its ideal 1."""
    circuit = noisy_bell()
    isa = transpile(
        circuit,
        target=backend_target(BRISBANE),
        initial_layout=[0, 1],
        optimization_level=0,
        seed_transpiler=1,
    )
    return isa, SparsePauliOp("ZZ").apply_layout(isa.layout)


def _params(circuit: QuantumCircuit, observable: Any, **options: Any) -> dict[str, Any]:
    level = options.pop("resilience_level", None)
    params: dict[str, Any] = {"pubs": [[circuit, [observable]]], "version": 2}
    params["options"] = {"seed_estimator": 11, "default_precision": 0.01, **options}
    if level is not None:
        params["resilience_level"] = level
    return json.loads(json.dumps(params, cls=RuntimeEncoder))


def _estimate(params: dict[str, Any]) -> tuple[Any, list[str]]:
    out = run_program("estimator", json.dumps(params), BRISBANE)
    return json.loads(out.result, cls=RuntimeDecoder), out.log


def test_resilience_level_2_brings_a_noisy_bell_closer_to_one_than_level_0() -> None:
    circuit, zz = _noisy_bell()
    values = {}
    for level in (0, 1, 2):
        result, log = _estimate(_params(circuit, zz, resilience_level=level))
        values[level] = float(result[0].data.evs[0])
        assert result.metadata["resilience"]["measure_mitigation"] is (level > 0)
        assert result.metadata["resilience"]["zne_mitigation"] is (level == 2)
        assert any(line.startswith(f"resilience_level {level}:") for line in log)
    # Level 0 carries readout and gate error, TREX removes the first, ZNE most of the second.
    assert values[0] < 0.9
    assert abs(1 - values[2]) < abs(1 - values[1]) < abs(1 - values[0])
    assert abs(1 - values[2]) < 0.05


def test_zne_options_shape_the_data_and_the_metadata() -> None:
    circuit, zz = _noisy_bell()
    zne = {"noise_factors": [1, 2, 3], "extrapolator": "linear", "amplifier": "gate_folding"}
    params = _params(
        circuit, zz, resilience={"zne_mitigation": True, "measure_mitigation": False, "zne": zne}
    )
    result, _ = _estimate(params)
    data, metadata = result[0].data, result[0].metadata
    assert data.evs.shape == (1,)
    assert data.evs_noise_factors.shape == (1, 3)
    # More folding, more noise: ⟨ZZ⟩ falls with the noise factor.
    assert data.evs_noise_factors[0, 0] > data.evs_noise_factors[0, 2]
    assert data.evs_extrapolated.shape[-1] == 4  # 0 and the three factors ("auto")
    assert np.asarray(metadata["resilience"]["zne"]["extrapolators"]).tolist() == ["linear"]
    assert metadata["shots"] == 10_000 and metadata["target_precision"] == 0.01
    assert result.metadata["resilience"] == {
        "measure_mitigation": False,
        "zne_mitigation": True,
        "pec_mitigation": False,
    }
    # The same seed, the same numbers.
    assert _estimate(params)[0][0].data.evs[0] == data.evs[0]


def test_twirling_settings_reach_the_program_and_the_metadata() -> None:
    circuit, zz = _noisy_bell()
    twirling = {"enable_gates": True, "num_randomizations": 5, "shots_per_randomization": 100}
    result, log = _estimate(_params(circuit, zz, resilience_level=1, twirling=twirling))
    assert result[0].metadata["num_randomizations"] == 5
    assert result.metadata["twirling"]["enable_gates"] is True
    assert result.metadata["twirling"]["num_randomizations"] == 5
    assert any("twirling: gates, measure" in line for line in log)


def test_dynamical_decoupling_is_accepted_and_says_it_has_no_effect() -> None:
    circuit, zz = _noisy_bell()
    dd = {"enable": True, "sequence_type": "XY4"}
    result, log = _estimate(_params(circuit, zz, dynamical_decoupling=dd))
    assert result.metadata["dynamical_decoupling"]["enable"] is True
    assert result.metadata["dynamical_decoupling"]["sequence_type"] == "XY4"
    assert any("dynamical_decoupling: accepted without effect" in line for line in log)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"resilience": {"pec_mitigation": True}}, "params.options.resilience.pec_mitigation"),
        (
            {"resilience": {"zne_mitigation": True, "zne": {"amplifier": "pea"}}},
            "params.options.resilience.zne.amplifier",
        ),
        (
            {"resilience": {"zne_mitigation": True, "zne": {"noise_factors": [1]}}},
            "params.options.resilience.zne.noise_factors",
        ),
        (  # a cubic fit needs four points
            {
                "resilience": {
                    "zne_mitigation": True,
                    "zne": {"noise_factors": [1, 3], "extrapolator": "polynomial_degree_3"},
                }
            },
            "params.options.resilience.zne.noise_factors",
        ),
        (
            {"resilience": {"zne": {"extrapolator": "cubic"}}},
            "params.options.resilience.zne.extrapolator",
        ),
        ({"twirling": {"num_randomizations": 0}}, "params.options.twirling.num_randomizations"),
        ({"twirling": {"no_such_option": 1}}, "params.options.twirling.no_such_option"),
        ({"twirling": [1]}, "params.options.twirling"),
        (
            {"dynamical_decoupling": {"sequence_type": "YY"}},
            "params.options.dynamical_decoupling.sequence_type",
        ),
    ],
)
def test_options_the_emulator_cannot_honour_are_refused_by_field(
    options: dict[str, Any], field: str
) -> None:
    circuit, zz = _noisy_bell()
    with pytest.raises(InvalidParams) as caught:
        validate_params("estimator", _params(circuit, zz, **options), BRISBANE)
    assert caught.value.field == field


def test_zne_on_a_circuit_only_the_stabilizer_can_take_fails_saying_why() -> None:
    circuit = transpile(
        ghz(40, measure=False), target=backend_target(BRISBANE), optimization_level=1
    )
    observable = SparsePauliOp("Z" * 40).apply_layout(circuit.layout)
    with pytest.raises(ProgramFailure) as caught:
        _estimate(_params(circuit, observable, resilience_level=2))
    assert "ZNE" in caught.value.reason and "stabilizer" in caught.value.reason
    # Level 1 (TREX) runs there: the stabilizer's Pauli products carry no readout error.
    result, log = _estimate(_params(circuit, observable, resilience_level=1))
    assert result.metadata["resilience"]["measure_mitigation"] is True
    assert any("without readout error" in line for line in log)


def test_the_server_estimators_own_option_fields_are_accepted() -> None:
    """Fields of the V2 options (what qiskit-ibm-runtime's own integration test sets) that
    the executor-based options model has no place for are noted, not refused."""
    circuit, zz = _noisy_bell()
    options = {
        "default_shots": 400,
        "resilience": {
            "measure_mitigation": True,
            "zne_mitigation": True,
            "zne": {
                "amplifier": "gate_folding_back",
                "noise_factors": [3, 5],
                "extrapolator": "linear",
            },
            "pec_mitigation": False,
            "layer_noise_learning": {
                "max_layers_to_learn": 10,
                "shots_per_randomization": 64,
                "num_randomizations": 16,
                "layer_pair_depths": [0, 1, 2, 4],
            },
            "measure_noise_learning": {"num_randomizations": 32, "shots_per_randomization": 100},
        },
        "execution": {"init_qubits": True, "rep_delay": 0.00025},
        "twirling": {
            "enable_gates": True,
            "enable_measure": True,
            "strategy": "active",
            "num_randomizations": 16,
            "shots_per_randomization": 25,
        },
    }
    result, log = _estimate(_params(circuit, zz, resilience_level=1, **options))
    assert result[0].data.evs_noise_factors.shape == (1, 2)
    assert result[0].metadata["num_randomizations"] == 16
    assert any("measure_noise_learning.shots_per_randomization" in line for line in log)
    assert any("layer_noise_learning" in line for line in log)


def test_an_observable_on_qubits_the_circuit_leaves_alone_counts_them_as_simulated() -> None:
    """qiskit-ibm-runtime's own integration test measures `X` on every qubit of a 3-qubit
    circuit: a 127-qubit simulation, which went to the density matrix (3 active qubits) and
    failed for memory."""
    circuit = transpile(
        ghz(3, measure=False), target=backend_target(BRISBANE), optimization_level=1
    )
    circuit.t(circuit.layout.final_index_layout()[0])  # non-Clifford: not the stabilizer
    everywhere = SparsePauliOp("X" * circuit.num_qubits)
    result, log = _estimate(_params(circuit, everywhere, resilience_level=1, default_shots=400))
    assert abs(float(result[0].data.evs[0])) < 0.2  # ⟨X⟩ of an untouched |0> is 0
    assert any(line.startswith("method: matrix_product_state") for line in log)
    assert any("127 qubits" in line for line in log)
