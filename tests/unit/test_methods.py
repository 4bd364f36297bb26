"""Which method runs a job, and the stabilizer path's fidelity: the stim conversion against
Aer's exact probabilities, the Pauli-twirled noise against the calibration and Aer's device
model, and the sampler end to end on 127 qubits."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp, Statevector, average_gate_fidelity, random_clifford
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from emulator.config import Settings, SettingsError
from emulator.domain.methods import MethodSetting
from emulator.domain.snapshots import load_snapshot
from emulator.simulation import Policy, ProgramFailure, run_program
from emulator.simulation.methods import choose_method, refuse_beyond, statevector_seconds
from emulator.simulation.noise import active_qubits, backend_target, noise_model_for
from emulator.simulation.stabilizer import PauliNoise, clifford_reason, sample, to_stim
from tests.circuits import bell, dense_circuit, ghz, long_running_circuit

BRISBANE = load_snapshot("ibm_brisbane", "brisbane")


def on_brisbane(circuit: QuantumCircuit) -> QuantumCircuit:
    return transpile(
        circuit, target=backend_target(BRISBANE), optimization_level=1, seed_transpiler=1
    )


# -- method choice -----------------------------------------------------------------------------


def test_auto_keeps_small_circuits_on_the_statevector_and_takes_wide_clifford_to_stabilizer():
    small, wide = on_brisbane(ghz(5)), on_brisbane(ghz(20))
    assert choose_method("auto", [small], 5, None).method == "statevector"
    chosen = choose_method("auto", [wide], 20, None)
    assert chosen.method == "stabilizer" and "Clifford" in chosen.reason
    rotated = wide.copy()
    rotated.rx(0.3, 0)
    kept = choose_method("auto", [rotated], 20, None)
    assert kept.method == "statevector" and "rx" in kept.reason


def test_a_custom_noise_model_stays_exact_and_an_ideal_one_is_taken():
    wide = on_brisbane(ghz(20))
    custom = NoiseModel()
    custom.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["sx"])
    assert choose_method("auto", [wide], 20, custom).method == "statevector"
    assert choose_method("auto", [wide], 20, NoiseModel()).method == "stabilizer"
    with pytest.raises(ProgramFailure, match="noise_model"):
        choose_method("stabilizer", [wide], 20, custom)


def test_a_forced_method_is_used_or_the_job_fails_naming_why():
    rotated = QuantumCircuit(2)
    rotated.rz(0.1, 0)
    assert choose_method("statevector", [on_brisbane(ghz(20))], 20, None).method == "statevector"
    assert choose_method("stabilizer", [ghz(2)], 2, None).method == "stabilizer"
    with pytest.raises(ProgramFailure, match="rz is not a Clifford gate") as refused:
        choose_method("stabilizer", [rotated], 2, None)
    assert "--simulation-method auto" in refused.value.solution


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda qc: qc.rz(math.pi / 2, 0), None),
        (lambda qc: qc.rz(3 * math.pi, 0), None),
        (lambda qc: qc.ecr(0, 1), None),
        (lambda qc: qc.sxdg(1), None),
        (lambda qc: qc.rz(0.25, 0), "rz is not a Clifford gate"),
        (lambda qc: qc.t(0), "t is not a Clifford gate"),
        (lambda qc: qc.rz(Parameter("a"), 0), "unbound parameters"),
        (lambda qc: qc.ccx(0, 1, 2), "ccx is not a Clifford gate"),
    ],
)
def test_clifford_reason_names_the_first_culprit(build, reason):
    qc = QuantumCircuit(3, 1)
    qc.h(0)
    build(qc)
    qc.measure(0, 0)
    found = clifford_reason(qc)
    assert found is None if reason is None else reason in (found or ""), found


def test_control_flow_is_not_for_the_stabilizer_path():
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(0)
    assert "control flow" in (clifford_reason(qc) or "")


def test_the_setting_parses_per_backend_and_refuses_unknown_methods_and_backends():
    methods = Settings(simulation_method=("stabilizer", "ibm_fez=statevector")).methods
    assert methods.for_backend("ibm_fez") == "statevector"
    assert methods.for_backend("ibm_brisbane") == "stabilizer"
    assert MethodSetting().for_backend("anything") == "auto"
    with pytest.raises(SettingsError, match="'mps' is not one of"):
        Settings(simulation_method=("mps",))
    with pytest.raises(SettingsError, match="ibm_nowhere"):
        Settings(simulation_method=("ibm_nowhere=stabilizer",))


# -- the stim conversion -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noiseless_stim_samples_follow_the_exact_probabilities(seed: int) -> None:
    """Random 3-qubit Cliffords in brisbane's basis (ecr, sx, x, rz): every gate's stim
    decomposition and qubit order checked against the statevector."""
    circuit = random_clifford(3, seed=seed).to_circuit()
    isa = transpile(circuit, basis_gates=["ecr", "sx", "x", "rz"], optimization_level=1)
    exact = Statevector(isa).probabilities_dict()
    measured = isa.copy()
    measured.measure_all()
    bits = sample(to_stim(measured, None), 40_000, seed)
    counts = Counter("".join("1" if b else "0" for b in row[::-1]) for row in bits)
    for outcome in set(exact) | set(counts):
        assert abs(counts.get(outcome, 0) / 40_000 - exact.get(outcome, 0.0)) < 0.015, outcome


def test_noisy_stim_samples_match_aers_full_device_noise_on_a_small_circuit() -> None:
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.s(2)
    qc.h(2)
    qc.measure_all()
    isa = on_brisbane(qc)
    shots = 100_000
    bits = sample(to_stim(isa, PauliNoise(backend_target(BRISBANE))), shots, 5)
    ours = Counter("".join("1" if b else "0" for b in row[::-1]) for row in bits)
    model = noise_model_for(BRISBANE, active_qubits(isa))
    aer = AerSimulator(noise_model=model).run(isa, shots=shots, seed_simulator=5).result()
    theirs = aer.get_counts()
    for outcome in set(ours) | set(theirs):
        assert abs(ours.get(outcome, 0) - theirs.get(outcome, 0)) / shots < 0.01, outcome


def test_readout_errors_are_the_calibrated_ones() -> None:
    target = backend_target(BRISBANE)
    noise = PauliNoise(target)
    qubit = 5
    p10, p01 = noise.readout(qubit)
    assert p10 == p01 == target["measure"][(qubit,)].error > 0  # as Aer reads a Target
    qc = QuantumCircuit(target.num_qubits, 2)
    qc.x(qubit)
    qc.measure(qubit, 0)
    qc.measure(qubit + 1, 1)
    bits = sample(to_stim(qc, noise), 200_000, 9)
    x_error = noise.probabilities("x", (qubit,))
    flipped = float(x_error[1] + x_error[2]) if x_error is not None else 0.0
    assert abs((1 - bits[:, 0].mean()) - (p01 + flipped)) < 0.003
    p10_next, _ = noise.readout(qubit + 1)
    assert abs(bits[:, 1].mean() - p10_next) < 0.003


# -- the Pauli-twirled noise -------------------------------------------------------------------


def _infidelity(probabilities: np.ndarray, qubits: int) -> float:
    """Average gate infidelity of a Pauli channel: (1 - p_I) · d / (d + 1)."""
    d = 2**qubits
    return (1 - float(probabilities[0])) * d / (d + 1)


def test_every_gate_keeps_its_calibrated_error_rate() -> None:
    target = backend_target(BRISBANE)
    noise = PauliNoise(target)
    checked = 0
    for name in ("sx", "x", "ecr"):
        for qubits, props in target[name].items():
            probabilities = noise.probabilities(name, qubits)
            if props is None or not props.error or probabilities is None:
                continue
            if props.error >= 0.5:  # a broken coupler (error 1): clipped to full depolarizing
                assert probabilities[0] < 0.01
                continue
            assert math.isclose(probabilities.sum(), 1.0, abs_tol=1e-12)
            assert probabilities.min() >= 0.0
            relaxation_only = noise.relaxation_only(name, qubits)
            if _infidelity(relaxation_only, len(qubits)) <= props.error:
                # Aer's rule: depolarizing tops relaxation up to the calibrated error exactly.
                assert math.isclose(
                    _infidelity(probabilities, len(qubits)), props.error, rel_tol=1e-9
                ), (name, qubits)
            checked += 1
    assert checked > 350  # brisbane: 127 sx, 127 x, 144 ecr with an error


@pytest.mark.parametrize(("name", "qubits"), [("sx", (0,)), ("x", (7,)), ("ecr", (1, 0))])
def test_the_twirl_keeps_the_fidelity_of_aers_device_model(name: str, qubits: tuple) -> None:
    model = noise_model_for(BRISBANE, set(qubits))
    error = model._local_quantum_errors[name][qubits]
    aer_infidelity = 1 - average_gate_fidelity(error.to_quantumchannel())
    ours = PauliNoise(backend_target(BRISBANE)).probabilities(name, qubits)
    assert ours is not None
    assert math.isclose(_infidelity(ours, len(qubits)), aer_infidelity, rel_tol=1e-6)


# -- the sampler on the stabilizer path -------------------------------------------------------


def _sampler(circuit: QuantumCircuit, **simulator: object) -> tuple[object, list[str]]:
    params = {"pubs": [[circuit]], "version": 2, "options": {"simulator": simulator}}
    out = run_program("sampler", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
    return json.loads(out.result, cls=RuntimeDecoder), out.log


def test_a_127_qubit_ghz_runs_on_the_stabilizer_and_says_so() -> None:
    circuit = on_brisbane(ghz(127))
    result, log = _sampler(circuit, seed_simulator=11, noise_model=NoiseModel())
    meas = result[0].data.meas
    assert meas.num_bits == 127 and meas.num_shots == 4096
    assert set(meas.get_counts()) == {"0" * 127, "1" * 127}  # ideal: a GHZ state exactly
    assert any(line.startswith("method: stabilizer") for line in log)
    assert result.metadata["simulator"]["method"] == "stabilizer"

    noisy, log = _sampler(circuit, seed_simulator=11)
    assert "Pauli-twirled" in noisy.metadata["simulator"]["noise"]
    weights = noisy[0].data.meas.bitcount()
    near = np.mean((weights <= 12) | (weights >= 115))
    # Device noise over ~200 two-qubit gates and 127 readouts: a fraction of shots stay near
    # all-0/all-1 (random bits: none), each qubit half the time 1.
    assert 0.05 < near < 0.6
    assert abs(weights.mean() / 127 - 0.5) < 0.05
    again, _ = _sampler(circuit, seed_simulator=11)
    assert again[0].data.meas.get_counts() == noisy[0].data.meas.get_counts()  # seeded


def test_parameterized_clifford_pubs_are_bound_per_parameter_set() -> None:
    theta = Parameter("t")
    qc = QuantumCircuit(14)
    qc.rx(theta, 0)
    for q in range(13):
        qc.cx(q, q + 1)
    qc.measure_all()
    circuit = on_brisbane(qc)
    params = {
        "pubs": [[circuit, [[0.0], [math.pi]]]],
        "version": 2,
        "options": {"simulator": {"seed_simulator": 3, "noise_model": NoiseModel()}},
    }
    out = run_program("sampler", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
    result = json.loads(out.result, cls=RuntimeDecoder)
    assert any(line.startswith("method: stabilizer") for line in out.log)
    meas = result[0].data.meas
    assert meas.shape == (2,)
    assert set(meas[0].get_counts()) == {"0" * 14} and set(meas[1].get_counts()) == {"1" * 14}


# -- refusing what cannot finish ---------------------------------------------------------------


def test_a_wide_noisy_non_clifford_job_is_refused_naming_its_size_and_the_way_out() -> None:
    circuit = on_brisbane(dense_circuit(30))
    params = {"pubs": [[circuit]], "version": 2}
    with pytest.raises(ProgramFailure) as refused:
        run_program(
            "sampler",
            json.dumps(params, cls=RuntimeEncoder),
            BRISBANE,
            policy=Policy(max_job_seconds=300),
        )
    reason = refused.value.args[0]
    qubits = len(active_qubits(circuit))  # routing may borrow a qubit or two
    assert f"statevector of {qubits} qubits" in reason and "4096 shots" in reason
    assert "--max-job-seconds 300" in reason
    assert "Clifford" in refused.value.solution and "fewer qubits" in refused.value.solution


def test_the_estimate_lets_the_long_running_test_circuit_run() -> None:
    """The integration tests' long-running job (cancel, time limit) must start, not be
    refused: its low estimate stays under the default limit."""
    circuit = on_brisbane(long_running_circuit())
    operations = sum(1 for i in circuit.data if i.operation.name not in ("barrier", "measure"))
    estimate = statevector_seconds(operations, len(active_qubits(circuit)), 1000, noisy=True)
    assert 0 < estimate < Settings().max_job_seconds


def test_no_limit_refuses_nothing() -> None:
    refuse_beyond(0, 1e12, "anything")
    refuse_beyond(300, 299.0, "just under")
    with pytest.raises(ProgramFailure, match="at least 1.3e\\+03 years"):
        refuse_beyond(300, 4e10, "far beyond")


# -- the estimator on the stabilizer path ------------------------------------------------------


def test_a_127_qubit_clifford_estimator_gives_the_ghz_correlations() -> None:
    circuit = on_brisbane(ghz(127, measure=False))
    labels = ["Z" + "I" * 125 + "Z", "X" * 127, "I" * 126 + "Z", "I" * 125 + "ZZ"]
    observables = [SparsePauliOp(label).apply_layout(circuit.layout) for label in labels]

    def run(**simulator: object) -> tuple[np.ndarray, np.ndarray, list[str]]:
        params = {"pubs": [[circuit, observables]], "version": 2}
        params["options"] = {"simulator": {"seed_simulator": 5, **simulator}}
        out = run_program("estimator", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
        data = json.loads(out.result, cls=RuntimeDecoder)[0].data
        return np.asarray(data.evs), np.asarray(data.stds), out.log

    evs, stds, log = run(noise_model=NoiseModel())
    assert "method: stabilizer (auto: Clifford circuits on 127 qubits)" in log
    assert evs[0] == evs[1] == evs[3] == 1.0 and stds[0] == 0.0  # GHZ stabilizers, exactly
    assert abs(evs[2]) < 0.08  # ⟨Z⟩ of one qubit: 0, within 1/precision² = 4096 shots
    noisy, _, _ = run()
    # Device noise: neighbours stay correlated, the chain's ends lose it (~200 noisy ECRs).
    assert noisy[3] > 0.9 and noisy[0] < noisy[3] - 0.3


def test_the_device_setting_reaches_aers_statevector() -> None:
    from emulator.simulation.noise import make_simulator, use_device

    assert make_simulator(None).options.device == "CPU"
    use_device("GPU")
    try:
        assert make_simulator(None).options.device == "GPU"
    finally:
        use_device("CPU")


def test_a_wide_noisy_non_clifford_estimator_job_is_refused_too() -> None:
    circuit = on_brisbane(dense_circuit(30).remove_final_measurements(False))
    observable = SparsePauliOp("Z" * 30).apply_layout(circuit.layout)
    params = {"pubs": [[circuit, [observable]]], "version": 2}
    with pytest.raises(ProgramFailure, match=r"statevector of \d+ qubits.*4096 shots"):
        run_program(
            "estimator",
            json.dumps(params, cls=RuntimeEncoder),
            BRISBANE,
            policy=Policy(max_job_seconds=300),
        )


# -- estimator fidelity: physical values, shots in the metadata, default_shots ------------------


def _estimate(circuit: QuantumCircuit, observables: list, **options: object) -> object:
    params = {"pubs": [[circuit, observables]], "version": 2, "options": options}
    out = run_program("estimator", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
    return json.loads(out.result, cls=RuntimeDecoder)[0]


def test_expectation_values_stay_within_what_the_observable_can_take() -> None:
    """⟨Z⟩ of |0> is 1; the shot noise drawn around it must not push it past 1."""
    circuit = QuantumCircuit(1)
    circuit.id(0)
    circuit = on_brisbane(circuit)
    z = SparsePauliOp("Z").apply_layout(circuit.layout)
    two_z = SparsePauliOp(["Z", "I"], [1.5, 0.5]).apply_layout(circuit.layout)
    for seed in range(8):
        pub = _estimate(
            circuit,
            [z, two_z],
            seed_estimator=seed,
            default_precision=0.2,
            simulator={"noise_model": NoiseModel()},
        )
        assert np.all(pub.data.evs[0] <= 1.0) and np.all(pub.data.evs[1] <= 2.0)
        assert pub.metadata["shots"] == 25 and pub.metadata["target_precision"] == 0.2


def test_a_single_observable_pub_keeps_its_shape() -> None:
    """A pub of one observable has shape (): its evs stay a 0-d array (clients read .shape)."""
    circuit = on_brisbane(bell(measure=False))
    zz = SparsePauliOp("ZZ").apply_layout(circuit.layout)
    params = {"pubs": [[circuit, zz]], "version": 2, "options": {"seed_estimator": 3}}
    out = run_program("estimator", json.dumps(params, cls=RuntimeEncoder), BRISBANE)
    pub = json.loads(out.result, cls=RuntimeDecoder)[0]
    assert isinstance(pub.data.evs, np.ndarray) and pub.data.evs.shape == ()


def test_default_shots_sets_the_precision_and_the_reported_shots() -> None:
    circuit = on_brisbane(bell(measure=False))
    zz = SparsePauliOp("ZZ").apply_layout(circuit.layout)
    pub = _estimate(circuit, [zz], default_shots=400, seed_estimator=1)
    assert pub.metadata["shots"] == 400 and pub.metadata["target_precision"] == 0.05
    # The samples' standard error: at most the precision 1/√400 (a Pauli's variance is ≤ 1).
    assert 0 < float(pub.data.stds[0]) <= 0.05 * 1.2
