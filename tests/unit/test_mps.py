"""The matrix product state path: which jobs `auto` takes there, the chain order and bond
bound, its samples against exact probabilities (noiseless and with the device noise), and the
density matrix where Aer's own rule takes it (so the log says what really ran)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import CXGate, RZZGate, SwapGate
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from emulator.domain.snapshots import load_snapshot
from emulator.simulation import Policy, ProgramFailure, run_program
from emulator.simulation.methods import Run, choose_method
from emulator.simulation.mps import _gate_rank, plan, sample_mps
from emulator.simulation.noise import active_qubits, backend_target, noise_model_for
from tests.circuits import bell, dense_circuit, ghz, trotter_circuit

BRISBANE = load_snapshot("ibm_brisbane", "brisbane")


def on_brisbane(circuit: QuantumCircuit) -> QuantumCircuit:
    return transpile(
        circuit, target=backend_target(BRISBANE), optimization_level=1, seed_transpiler=1
    )


def _choose(circuit: QuantumCircuit, shots: int = 4096, **kwargs: object):
    qubits = len(active_qubits(circuit))
    return choose_method("auto", [circuit], qubits, None, [Run(circuit, shots)], **kwargs)


# -- which jobs go to the MPS --------------------------------------------------------------


def test_a_wide_shallow_non_clifford_circuit_goes_to_the_mps_and_says_why() -> None:
    chosen = _choose(on_brisbane(trotter_circuit(60)))
    assert chosen.method == "matrix_product_state"
    assert "not a Clifford circuit" in chosen.reason
    assert "a statevector of 60 qubits would not fit" in chosen.reason
    assert "bond dimension at most 16" in chosen.reason


def test_a_dense_wide_circuit_stays_on_the_statevector() -> None:
    assert _choose(on_brisbane(dense_circuit(40))).method == "statevector"


def test_the_mps_takes_only_what_the_statevector_cannot() -> None:
    """A 14-qubit shallow circuit the statevector finishes in time keeps running there (as it
    did before the MPS existed); past --max-job-seconds it goes to the MPS."""
    circuit = on_brisbane(trotter_circuit(14))
    assert _choose(circuit, max_job_seconds=300).method == "statevector"
    moved = _choose(circuit, shots=10**6, max_job_seconds=300)
    assert moved.method == "matrix_product_state"
    assert "the statevector would take at least" in moved.reason


def test_forced_mps_refuses_control_flow_and_the_estimator() -> None:
    circuit = QuantumCircuit(2, 1)
    circuit.h(0)
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.x(1)
    with pytest.raises(ProgramFailure, match="control flow"):
        choose_method("matrix_product_state", [circuit], 2, None, [Run(circuit, 10)])
    plain = trotter_circuit(3)
    with pytest.raises(ProgramFailure, match="the executor has no matrix product state"):
        choose_method(
            "matrix_product_state", [plain], 3, None, [Run(plain, 10)], program="executor"
        )
    forced = choose_method(
        "matrix_product_state", [plain], 3, None, [Run(plain, 10)], program="estimator"
    )
    assert forced.method == "matrix_product_state"
    assert _choose(plain, program="sampler").method != "matrix_product_state"  # 3 qubits


# -- the chain order and the bond bound --------------------------------------------------------


def test_schmidt_ranks_of_two_qubit_gates() -> None:
    assert _gate_rank(CXGate()) == 1.0  # one ebit at most
    assert _gate_rank(RZZGate(0.2)) == 1.0
    assert _gate_rank(SwapGate()) == 2.0


def test_the_chain_order_follows_the_heavy_hex_and_bounds_the_bond_dimension() -> None:
    circuit = on_brisbane(trotter_circuit(60))
    layout = plan(circuit)
    assert sorted(layout.order) == sorted(active_qubits(circuit))
    # Neighbours in the order interact: every two-qubit gate spans few positions.
    place = {q: i for i, q in enumerate(layout.order)}
    spans = [
        abs(place[circuit.find_bit(a).index] - place[circuit.find_bit(b).index])
        for a, b in (i.qubits for i in circuit.data if len(i.qubits) == 2)
    ]
    assert max(spans) <= 3
    # Two Trotter steps cross each bond with 2 rzz = 4 ecr after transpilation: 2^4.
    assert layout.max_bond == 16 and layout.final_measurements
    assert plan(on_brisbane(dense_circuit(30))).max_bond > 256


# -- samples against exact probabilities --------------------------------------------------------


def _tvd(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def _sampled(circuit: QuantumCircuit, shots: int, ideal: bool, trajectories: int = 32):
    pub = SamplerPub.coerce((circuit, None, shots))
    result = sample_mps([pub], BRISBANE, seed=5, ideal=ideal, trajectories=trajectories)
    return {k: v / shots for k, v in result[0].data.meas.get_counts().items()}


def _aer(circuit: QuantumCircuit, model: NoiseModel | None) -> dict[str, float]:
    """Aer's density matrix (exact for the model; sampled finely enough for a TVD bound)."""
    simulator = AerSimulator(method="density_matrix", noise_model=model)
    counts = simulator.run(circuit, shots=200_000, seed_simulator=3).result().get_counts()
    return {k: v / 200_000 for k, v in counts.items()}


def test_noiseless_mps_samples_follow_the_exact_probabilities() -> None:
    circuit = on_brisbane(trotter_circuit(5, steps=3))
    assert _tvd(_sampled(circuit, 40_000, ideal=True), _aer(circuit, None)) < 0.02


def test_noisy_mps_samples_match_aers_full_device_noise() -> None:
    """The Pauli-twirled noise drawn as trajectories against Aer's density matrix with the
    untwirled device model: close (the twirl drops coherent parts and relaxation's bias)."""
    circuit = on_brisbane(trotter_circuit(5, steps=3))
    model = noise_model_for(BRISBANE, active_qubits(circuit))
    sampled = _sampled(circuit, 40_000, ideal=False, trajectories=1000)
    assert _tvd(sampled, _aer(circuit, model)) < 0.03
    # With the noise left out the gap is larger: the test sees the noise.
    assert _tvd(_sampled(circuit, 40_000, ideal=True), _aer(circuit, model)) > 0.03


# -- end to end through the sampler program -----------------------------------------------------


def _sampler(circuit: QuantumCircuit, shots: int, **simulator: object) -> tuple[object, list[str]]:
    params = {"pubs": [[circuit, None, shots]], "version": 2, "options": {"simulator": simulator}}
    out = run_program("sampler", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
    return json.loads(out.result, cls=RuntimeDecoder), out.log


def test_a_60_qubit_shallow_circuit_runs_on_the_mps_seeded_and_says_so() -> None:
    circuit = on_brisbane(trotter_circuit(60))
    result, log = _sampler(circuit, 500, seed_simulator=9)
    meas = result[0].data.meas
    assert meas.num_bits == 60 and meas.num_shots == 500
    simulator = result.metadata["simulator"]
    assert simulator["method"] == "matrix_product_state"
    assert "32 noise realizations" in simulator["noise"]
    assert any(line.startswith("method: matrix_product_state (auto:") for line in log)
    # Weak rotations: most qubits stay 0, noise adds a few flips (readout ~2 % each).
    assert 1 < meas.bitcount().mean() < 20
    again, _ = _sampler(circuit, 500, seed_simulator=9)
    assert again[0].data.meas.get_counts() == meas.get_counts()
    ideal, _ = _sampler(circuit, 500, seed_simulator=9, noise_model=NoiseModel())
    assert ideal[0].data.meas.bitcount().mean() < meas.bitcount().mean()


def test_a_forced_mps_job_beyond_the_limit_is_refused_naming_its_size() -> None:
    circuit = on_brisbane(trotter_circuit(60))
    circuit.rx(0.1, circuit.find_bit(circuit.data[-1].qubits[0]).index)  # after a measure
    params = {"pubs": [[circuit, None, 100_000]], "version": 2}
    with pytest.raises(ProgramFailure) as refused:
        run_program(
            "sampler",
            json.dumps(params, cls=RuntimeEncoder),
            BRISBANE,
            policy=Policy(method="matrix_product_state", max_job_seconds=60),
        )
    assert "matrix product state of 60 qubits" in refused.value.args[0]


# -- the density matrix, where Aer's own rule takes it ---------------------------------------


def test_small_noisy_jobs_with_more_shots_than_amplitudes_say_density_matrix() -> None:
    small = on_brisbane(bell())
    chosen = _choose(small, shots=1024)
    assert chosen.method == "density_matrix" and chosen.aer_method == "density_matrix"
    wide = on_brisbane(ghz(8))
    assert _choose(wide, shots=100).method == "statevector"  # 100 shots < 2^8
    none = choose_method("auto", [wide], 8, None, [Run(wide, 100)])
    assert none.method == "statevector" and none.aer_method == "statevector"
    both = choose_method("auto", [small, wide], 10, None, [Run(small, 1024), Run(wide, 100)])
    assert both.aer_method == "automatic" and "pub(s) 0" in both.reason
    ideal = choose_method("auto", [small], 2, NoiseModel(), [Run(small, 1024)])
    assert ideal.method == "statevector"  # no noise: one statevector samples every shot


def test_the_explicit_method_keeps_seeded_counts_what_aers_automatic_gave() -> None:
    from qiskit_aer.primitives import SamplerV2

    from emulator.simulation.noise import make_simulator

    circuit = on_brisbane(bell())
    model = noise_model_for(BRISBANE, active_qubits(circuit))
    chosen = _choose(circuit, shots=1024)

    def counts(method: str) -> dict[str, int]:
        sampler = SamplerV2.from_backend(make_simulator(model, method), seed=7)
        return sampler.run([(circuit, None, 1024)]).result()[0].data.meas.get_counts()

    assert counts(chosen.aer_method) == counts("automatic")
    assert counts("statevector") != counts("automatic")  # the label matters: not the same run
    assert math.isfinite(sum(counts("automatic").values()))


def test_the_executor_names_the_statevector_family_member_it_runs() -> None:
    from emulator.simulation.methods import statevector_only

    small = on_brisbane(bell())
    assert statevector_only("executor", "auto", [Run(small, 1024)]).aer_method == "density_matrix"
    assert statevector_only("executor", "auto", [Run(small, 2)]).aer_method == "statevector"
    forced = statevector_only("executor", "statevector", [Run(small, 1024)])
    assert forced.aer_method == "statevector"
    other = statevector_only("executor", "stabilizer", [Run(small, 1024)])
    assert "stabilizer serves sampler jobs" in other.reason


# -- the estimator on the MPS --------------------------------------------------------------


def _estimator_pub(circuit: QuantumCircuit, labels: list[str], precision: float):
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.quantum_info import SparsePauliOp

    observables = [SparsePauliOp(label).apply_layout(circuit.layout) for label in labels]
    return EstimatorPub.coerce((circuit, observables), precision=precision)


def _aer_expectations(circuit: QuantumCircuit, labels: list[str], model: NoiseModel | None):
    from qiskit_aer.primitives import EstimatorV2

    simulator = AerSimulator(method="density_matrix", noise_model=model)
    pub = _estimator_pub(circuit, labels, 0.0)
    return EstimatorV2.from_backend(simulator).run([pub]).result()[0].data.evs


LABELS = ["IIIIZ", "IIIZZ", "IIXII", "ZZZZZ", "IYYII"]


def test_mps_expectation_values_are_exact_noiselessly_and_close_to_aers_with_noise() -> None:
    from emulator.simulation.mps import estimate_mps

    circuit = on_brisbane(trotter_circuit(5, steps=3, measure=False))
    pub = _estimator_pub(circuit, LABELS, 0.0)
    ideal = estimate_mps([pub], BRISBANE, seed=1, ideal=True)[0].data
    assert np.allclose(ideal.evs, _aer_expectations(circuit, LABELS, None), atol=1e-9)
    assert np.allclose(ideal.stds, 0.0)
    model = noise_model_for(BRISBANE, active_qubits(circuit))
    exact = _aer_expectations(circuit, LABELS, model)
    noisy = estimate_mps([pub], BRISBANE, seed=1, ideal=False, trajectories=600)[0].data
    assert np.max(np.abs(noisy.evs - exact)) < 0.04
    assert np.max(np.abs(ideal.evs - exact)) > 0.04  # the noise is there to be matched
    assert np.all(noisy.stds > 0)


def test_a_60_qubit_estimator_job_runs_on_the_mps() -> None:
    from qiskit.quantum_info import SparsePauliOp

    circuit = on_brisbane(trotter_circuit(60, measure=False))
    labels = ["I" * 59 + "Z", "I" * 58 + "ZZ", "Z" + "I" * 59]
    observables = [SparsePauliOp(label).apply_layout(circuit.layout) for label in labels]
    params = {"pubs": [[circuit, observables]], "version": 2, "options": {"seed_estimator": 4}}
    out = run_program("estimator", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
    result = json.loads(out.result, cls=RuntimeDecoder)
    assert result.metadata["simulator"]["method"] == "matrix_product_state"
    assert "averaged over them" in result.metadata["simulator"]["noise"]
    evs = result[0].data.evs
    # Weak rx rotations: every ⟨Z⟩ stays near +1, below it (rotation and noise).
    assert evs.shape == (3,) and np.all((evs > 0.5) & (evs < 1.0))


# -- a failed job's log ----------------------------------------------------------------------


def test_a_refused_job_fails_with_the_programs_log_lines() -> None:
    from emulator.execution.worker import Failed, Ticket, run_ticket

    circuit = on_brisbane(dense_circuit(30))
    params = json.dumps({"pubs": [[circuit]], "version": 2}, cls=RuntimeEncoder)
    ticket = Ticket("j", "sampler", params, "ibm_brisbane", "brisbane", max_job_seconds=300)
    failed = run_ticket(ticket)
    assert isinstance(failed, Failed) and "--max-job-seconds 300" in failed.reason
    assert failed.log[0].startswith("sampler: 1 pub(s) on ibm_brisbane")
    assert any(line.startswith("method: statevector (auto: not a Clifford") for line in failed.log)
    assert any(line.startswith("noise: ibm_brisbane calibration") for line in failed.log)


def test_a_density_matrix_job_is_estimated_as_one_not_as_trajectories() -> None:
    """100,000 shots of 8 noisy qubits: as trajectories at least ~2 s, as one density matrix
    milliseconds; under a 1 s limit it runs (and says density_matrix)."""
    circuit = on_brisbane(trotter_circuit(8))
    params = {"pubs": [[circuit, None, 100_000]], "version": 2}
    out = run_program(
        "sampler",
        json.dumps(params, cls=RuntimeEncoder),
        BRISBANE,
        policy=Policy(max_job_seconds=1),
    )
    result = json.loads(out.result, cls=RuntimeDecoder)
    assert result.metadata["simulator"]["method"] == "density_matrix"
    assert result[0].data.meas.num_shots == 100_000
