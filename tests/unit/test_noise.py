"""Reduced noise models: same errors as the full device model on the qubits a job touches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.transpiler import Target
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from emulator.domain.snapshots import BackendSnapshot, load_snapshot
from emulator.simulation.noise import (
    active_qubits,
    backend_target,
    build_target,
    noise_model_for,
    noise_model_from_target,
    restricted_target,
)


@pytest.fixture(scope="module")
def manila() -> BackendSnapshot:
    return load_snapshot("fake_manila", "manila")


@pytest.fixture(scope="module")
def brisbane() -> BackendSnapshot:
    return load_snapshot("ibm_brisbane", "brisbane")


def _errors(model: NoiseModel) -> dict[tuple[str, str, tuple[int, ...]], Any]:
    """Every local error of a model keyed by (kind, instruction, qubits), ids dropped."""
    entries: dict[tuple[str, str, tuple[int, ...]], Any] = {}
    for error in model.to_dict(serializable=True)["errors"]:
        body = {k: v for k, v in error.items() if k not in ("id", "operations", "gate_qubits")}
        for operation in error["operations"]:
            for qubits in error["gate_qubits"]:
                entries[(error["type"], operation, tuple(qubits))] = body
    return entries


def _restrict(entries: dict[tuple[str, str, tuple[int, ...]], Any], qubits: Iterable[int]) -> dict:
    keep = set(qubits)
    return {key: value for key, value in entries.items() if keep.issuperset(key[2])}


def _delay_pass_parameters(model: NoiseModel) -> list[tuple[Any, ...]]:
    # The relaxation-on-delay pass is not exposed publicly; its inputs define its behaviour.
    return [
        (type(p).__name__, p._dt, tuple(p._t1s), tuple(p._t2s), tuple(p._p1s))
        for p in model._custom_noise_passes
    ]


def test_target_matches_the_clients_fake_backend(manila: BackendSnapshot) -> None:
    """Same converter as the client: the Target equals FakeManilaV2's, gate by gate."""
    ours = backend_target(manila)
    theirs = FakeManilaV2().target
    assert ours.num_qubits == theirs.num_qubits == manila.num_qubits
    assert set(ours.operation_names) == set(theirs.operation_names)
    for name in ("cx", "sx", "x", "measure"):
        assert set(ours[name]) == set(theirs[name])
        for qargs in ours[name]:
            assert ours[name][qargs].error == pytest.approx(theirs[name][qargs].error)
            assert ours[name][qargs].duration == pytest.approx(theirs[name][qargs].duration)


def test_target_is_cached_per_snapshot(manila: BackendSnapshot) -> None:
    assert backend_target(manila) is backend_target(manila)


def test_restricted_target_keeps_only_active_qargs(manila: BackendSnapshot) -> None:
    reduced = restricted_target(backend_target(manila), {0, 1})
    assert isinstance(reduced, Target)
    assert set(reduced["cx"]) == {(0, 1), (1, 0)}
    assert set(reduced["measure"]) == {(0,), (1,)}
    relaxation = [(p.t1, p.t2) for p in reduced.qubit_properties]
    assert relaxation == [(p.t1, p.t2) for p in backend_target(manila).qubit_properties]
    # Global (control-flow) instructions survive so the noise model's basis is unchanged.
    assert "if_else" in reduced.operation_names


@pytest.mark.parametrize("active", [{0}, {0, 1}, {1, 2, 3}, {0, 1, 2, 3, 4}])
def test_reduced_model_equals_full_model_on_active_qubits(
    manila: BackendSnapshot, active: set[int]
) -> None:
    full = noise_model_from_target(backend_target(manila))
    reduced = noise_model_for(manila, active)
    assert _errors(reduced) == _restrict(_errors(full), active)
    assert {key[2] for key in _errors(reduced) if key[0] == "roerror"} == {(q,) for q in active}
    assert sorted(reduced.basis_gates) == sorted(full.basis_gates)
    assert _delay_pass_parameters(reduced) == _delay_pass_parameters(full)


def test_reduced_model_simulates_like_full_model(manila: BackendSnapshot) -> None:
    """Same seed, same counts: gates, delays (relaxation) and readout on qubits 1 and 2."""
    theta = Parameter("theta")
    circuit = QuantumCircuit(5, 2)
    circuit.sx(1)
    circuit.rz(theta, 1)
    circuit.sx(1)
    circuit.cx(1, 2)
    circuit.delay(20_000, 2, unit="dt")
    circuit.x(2)
    circuit.measure([1, 2], [0, 1])
    bound = circuit.assign_parameters([0.4])
    full = AerSimulator(noise_model=noise_model_from_target(backend_target(manila)))
    reduced = AerSimulator(noise_model=noise_model_for(manila, active_qubits(circuit)))
    counts_full = full.run(bound, shots=4000, seed_simulator=11).result().get_counts()
    counts_reduced = reduced.run(bound, shots=4000, seed_simulator=11).result().get_counts()
    assert counts_full == counts_reduced


def test_reduced_model_is_cached(manila: BackendSnapshot) -> None:
    assert noise_model_for(manila, [0, 1]) is noise_model_for(manila, {1, 0})
    assert noise_model_for(manila, [0, 1]) is not noise_model_for(manila, [0, 2])


def test_brisbane_pair_equals_full_model(brisbane: BackendSnapshot) -> None:
    """Eagle (127 q): the 2-qubit model equals the full build restricted to that pair.

    How much cheaper the reduced build is: `python bench/noise_models.py`."""
    target = build_target(brisbane)
    pair = next(q for q in target["ecr"] if q is not None)
    reduced = noise_model_for(brisbane, pair)
    full = noise_model_from_target(target)
    assert _errors(reduced) == _restrict(_errors(full), pair)
    assert _delay_pass_parameters(reduced) == _delay_pass_parameters(full)
    assert sorted(reduced.noise_qubits) == sorted(pair)  # only the pair's noise was built


def test_active_qubits_ignores_barriers_and_reads_blocks() -> None:
    circuit = QuantumCircuit(8, 2)
    circuit.h(0)
    circuit.barrier(range(8))
    circuit.delay(100, 5)
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.x(3)
    with circuit.box():
        circuit.cz(6, 7)
    assert active_qubits(circuit) == {0, 3, 5, 6, 7}


def test_reduced_targets_on_heron_hold_only_the_touched_qubits() -> None:
    fez = load_snapshot("ibm_fez", "fez")
    backend_target(fez)
    model = noise_model_for(fez, {10, 11, 12})
    assert sorted(model.noise_qubits) == [10, 11, 12]
    assert {"cz", "sx", "measure"} <= set(model.noise_instructions)
