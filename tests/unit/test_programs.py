"""sampler / estimator / executor programs: validation, simulation, client-decodable results."""

from __future__ import annotations

import base64
import copy
import json
import math
import zlib
from collections.abc import Callable
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import Target
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_ibm_runtime.decoders.defaults import DEFAULT_DECODERS
from qiskit_ibm_runtime.decoders.executor_estimator.decoder import ClientSideEstimatorDecoder
from qiskit_ibm_runtime.executor_estimator.prepare import prepare as prepare_client_estimator
from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import run_quantum_program
from qiskit_ibm_runtime.json import RuntimeEncoder
from qiskit_ibm_runtime.options_models import EstimatorOptions, ExecutorOptions
from qiskit_ibm_runtime.quantum_program import QuantumProgram
from qiskit_ibm_runtime.quantum_program.params_converters import QUANTUM_PROGRAM_PARAMS_CONVERTERS

from emulator.domain.snapshots import BackendSnapshot, load_snapshot
from emulator.simulation import (
    PROGRAM_IDS,
    REASON_EXECUTION_FAILED,
    REASON_INVALID_JOB,
    InvalidParams,
    ProgramFailure,
    RunOutput,
    run_program,
    validate_params,
)
from emulator.simulation.estimator import prepare_estimator
from emulator.simulation.executor import estimator_support, prepare_executor, prune_circuit
from emulator.simulation.noise import active_qubits, backend_target
from emulator.simulation.params import DEFAULT_PRECISION, DEFAULT_SHOTS, encode, sanitize
from emulator.simulation.sampler import prepare_sampler
from tests.circuits import memory_failure_circuit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def manila() -> BackendSnapshot:
    return load_snapshot("fake_manila", "manila")


@pytest.fixture(scope="module")
def brisbane() -> BackendSnapshot:
    return load_snapshot("ibm_brisbane", "brisbane")


@pytest.fixture(scope="module")
def fez() -> BackendSnapshot:
    return load_snapshot("ibm_fez", "fez")


@pytest.fixture(scope="module")
def brisbane_target(brisbane: BackendSnapshot) -> Target:
    """Built once per module (and per process: the runners share the cache)."""
    return backend_target(brisbane)


@pytest.fixture(scope="module")
def fez_target(fez: BackendSnapshot) -> Target:
    return backend_target(fez)


def body(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def wire(value: Any) -> Any:
    """What the server receives: the client's RuntimeEncoder output, parsed as plain JSON."""
    return json.loads(json.dumps(value, cls=RuntimeEncoder))


def primitive_params(pubs: list[Any], options: dict[str, Any] | None = None, **extra: Any) -> Any:
    return wire(
        {"pubs": pubs, "options": options or {}, "version": 2, "support_qiskit": True, **extra}
    )


def decode(program_id: str, text: str) -> Any:
    """Chain the client's default decoders exactly as `RuntimeJobV2.result()` does."""
    return reduce(
        lambda data, decoder: decoder.decode(data) if decoder.is_applicable(data) else data,
        DEFAULT_DECODERS[program_id],
        text,
    )


def run(program_id: str, params: Any, snapshot: BackendSnapshot) -> RunOutput:
    validate_params(program_id, params, snapshot)
    return run_program(program_id, json.dumps(params), snapshot)


def bell(target: Target, measure: bool = True) -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    if measure:
        circuit.measure_all()
    return transpile(circuit, target=target, optimization_level=1, seed_transpiler=7)


def client_estimator_params(
    target: Target, observables: list[str], seed: int | None, randomizations: int | None = None
) -> dict[str, Any]:
    """Executor params exactly as the client-side Estimator builds them (`Executor.run`)."""
    circuit = bell(target, measure=False)
    layout_observables = [SparsePauliOp(o).apply_layout(circuit.layout) for o in observables]
    options = EstimatorOptions()
    options.simulator.seed_simulator = seed
    if randomizations is not None:
        options.twirling.num_randomizations = randomizations
        options.twirling.shots_per_randomization = 32
    program, executor_options = prepare_client_estimator([(circuit, layout_observables)], options)
    program._semantic_role = "estimator_v2"
    converter = QUANTUM_PROGRAM_PARAMS_CONVERTERS["v2.0"]
    return converter.encoder(program, executor_options).model_dump(mode="json")


# --------------------------------------------------------------------------- fixtures


def test_public_api() -> None:
    programs = {"sampler", "estimator", "executor", "noise-learner", "noiselearner"}
    assert frozenset(programs) == PROGRAM_IDS


def test_sampler_fixture(manila: BackendSnapshot) -> None:
    request = body("post_jobs_sampler_body.json")
    output = run(request["program_id"], request["params"], manila)
    result = decode("sampler", output.result)
    assert len(result) == 1
    meas = result[0].data.meas
    assert meas.shape == () and meas.num_shots == DEFAULT_SHOTS and meas.num_bits == 2
    assert result[0].metadata == {"shots": DEFAULT_SHOTS, "circuit_metadata": {}}
    assert result.metadata["version"] == 2
    spans = result.metadata["execution"]["execution_spans"]
    assert spans[0].size == DEFAULT_SHOTS
    assert output.quantum_seconds > 0
    assert any("seed_simulator" in line for line in output.log)


def test_sampler_options_fixture(manila: BackendSnapshot) -> None:
    request = body("post_jobs_sampler_options_body.json")
    output = run("sampler", request["params"], manila)
    result = decode("sampler", output.result)
    meas = result[0].data.meas
    assert meas.shape == (3,) and meas.num_shots == 1000
    assert result[0].metadata["shots"] == 1000
    assert any("dynamical_decoupling, twirling" in line for line in output.log)


def test_estimator_fixture(manila: BackendSnapshot) -> None:
    request = body("post_jobs_estimator_body.json")
    output = run("estimator", request["params"], manila)
    result = decode("estimator", output.result)
    data = result[0].data
    assert data.evs.shape == (2,) and data.stds.shape == (2,)
    # stds are the standard errors of the samples (as on IBM), no more than the precision
    # asked for (a Pauli's variance is at most 1), and ⌈1/0.05²⌉ shots ran.
    assert np.all(data.stds > 0) and np.all(data.stds <= 0.05 * 1.2)
    assert result[0].metadata["target_precision"] == 0.05
    assert result[0].metadata["shots"] == 400
    assert any("resilience_level 1: TREX" in line for line in output.log)
    # seed_estimator=42 in the fixture: identical on a second run.
    assert run("estimator", request["params"], manila).result == output.result


def test_executor_fixture(fez: BackendSnapshot) -> None:
    request = body("post_jobs_executor_sampler_body.json")
    output = run("executor", request["params"], fez)
    raw = json.loads(output.result)
    assert raw["schema_version"] == "v2.0"
    assert raw["semantic_role"] == request["params"]["quantum_program"]["semantic_role"]
    assert raw["passthrough_data"] == request["params"]["quantum_program"]["passthrough_data"]
    result = decode("executor", output.result)
    assert type(result[0]).__name__ == "SamplerPubResult"
    meas = result[0].data.meas
    assert meas.num_shots == 10 and meas.num_bits == 2
    assert any("2 qubits simulated" in line for line in output.log)


# --------------------------------------------------------------------------- sampler


def test_bell_on_brisbane_is_correlated_and_deterministic(
    brisbane: BackendSnapshot, brisbane_target: Target
) -> None:
    params = primitive_params([[bell(brisbane_target)]], {"simulator": {"seed_simulator": 1234}})
    first = run("sampler", params, brisbane)
    counts = decode("sampler", first.result)[0].data.meas.get_counts()
    assert sum(counts.values()) == DEFAULT_SHOTS
    assert counts.get("00", 0) + counts.get("11", 0) > 0.9 * DEFAULT_SHOTS
    assert counts.get("01", 0) + counts.get("10", 0) > 0  # the device noise is there
    again = decode("sampler", run("sampler", params, brisbane).result)[0].data.meas.get_counts()
    assert again == counts
    assert any("2 qubits" in line and "calibration" in line for line in first.log)


def test_bell_burst_simulates_only_the_touched_pair(
    brisbane: BackendSnapshot, brisbane_target: Target
) -> None:
    """Bell jobs on a 127-qubit device: only two qubits' noise is built and simulated.

    The burst's speed is a figure, not an assertion: `python bench/noise_models.py`."""
    params = primitive_params([[bell(brisbane_target)]], {"simulator": {"seed_simulator": 1}})
    text = json.dumps(params)
    outputs = []
    for _ in range(3):
        validate_params("sampler", params, brisbane)
        outputs.append(run_program("sampler", text, brisbane))
    counts = [decode("sampler", o.result)[0].data.meas.get_counts() for o in outputs]
    assert counts[0] == counts[1] == counts[2]  # seeded: the same counts every time
    assert all(any("2 qubits" in line for line in o.log) for o in outputs)


def test_user_noise_model_replaces_device_noise(
    brisbane: BackendSnapshot, brisbane_target: Target
) -> None:
    options = {"simulator": {"noise_model": NoiseModel(), "seed_simulator": 5}}
    output = run(
        "sampler", primitive_params([[bell(brisbane_target), None, 500]], options), brisbane
    )
    counts = decode("sampler", output.result)[0].data.meas.get_counts()
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 500
    assert any("user-supplied NoiseModel" in line for line in output.log)


def test_shots_precedence(manila: BackendSnapshot) -> None:
    request = body("post_jobs_sampler_body.json")
    pub = request["params"]["pubs"][0]

    def shots(pub_shots: Any, options: dict[str, Any], top: Any = None) -> int:
        params = {"pubs": [[pub[0], pub[1], pub_shots]], "options": options}
        if top is not None:
            params["shots"] = top
        return prepare_sampler(params, manila).pubs[0].shots

    assert shots(None, {}) == DEFAULT_SHOTS == 4096
    assert shots(None, {"default_shots": 300}) == 300
    assert shots(None, {"default_shots": 300}, top=200) == 200
    assert shots(100, {"default_shots": 300}, top=200) == 100
    # A bare circuit pub takes the defaults too, and the result reports the shots used.
    output = run("sampler", {"pubs": [pub[0]], "options": {"default_shots": 64}}, manila)
    result = decode("sampler", output.result)
    assert result[0].data.meas.num_shots == 64 and result[0].metadata["shots"] == 64


def test_parameterised_pubs_with_different_shots(manila: BackendSnapshot) -> None:
    theta = Parameter("theta")
    circuit = QuantumCircuit(5, 1)
    circuit.rx(theta, 0)
    circuit.measure(0, 0)
    values = np.array([[0.0], [math.pi]])
    params = primitive_params(
        [[circuit, values, 50], [circuit, values[:1], 30]], {"simulator": {"seed_simulator": 3}}
    )
    result = decode("sampler", run("sampler", params, manila).result)
    assert result[0].data.c.shape == (2,) and result[0].data.c.num_shots == 50
    assert result[1].data.c.shape == (1,) and result[1].data.c.num_shots == 30
    assert result[0].data.c.get_counts(1).get("1", 0) > 40


def test_memory_failure_becomes_program_failure(
    brisbane: BackendSnapshot, brisbane_target: Target
) -> None:
    params = primitive_params([[memory_failure_circuit(brisbane_target), None, 100]])
    validate_params("sampler", params, brisbane)
    with pytest.raises(ProgramFailure) as caught:
        run_program("sampler", json.dumps(params), brisbane)
    assert "Insufficient memory" in caught.value.reason
    assert caught.value.reason_code == REASON_EXECUTION_FAILED
    assert caught.value.solution


# --------------------------------------------------------------------------- estimator


def test_estimator_zz_on_bell_is_one(brisbane: BackendSnapshot, brisbane_target: Target) -> None:
    circuit = bell(brisbane_target, measure=False)
    observables = [SparsePauliOp(o).apply_layout(circuit.layout) for o in ("ZZ", "XX", "ZI")]
    params = primitive_params(
        [[circuit, [o for o in observables], None, 0.01]],
        {"seed_estimator": 9},
        resilience_level=1,
    )
    output = run("estimator", params, brisbane)
    result = decode("estimator", output.result)
    evs = result[0].data.evs
    assert evs.shape == (3,)
    assert 0.9 < evs[0] <= 1.05 and 0.9 < evs[1] <= 1.05
    assert abs(evs[2]) < 0.1
    stds = result[0].data.stds
    assert np.all(stds > 0) and np.all(stds <= 0.01 * 1.2)
    assert run("estimator", params, brisbane).result == output.result


def test_precision_and_seed_precedence(manila: BackendSnapshot) -> None:
    request = body("post_jobs_estimator_body.json")
    circuit, observables, values, _ = request["params"]["pubs"][0]

    def prepared(pub_precision: Any, options: dict[str, Any], top: Any = None) -> Any:
        params = {"pubs": [[circuit, observables, values, pub_precision]], "options": options}
        if top is not None:
            params["precision"] = top
        return prepare_estimator(params, manila)

    assert prepared(None, {}).pubs[0].precision == DEFAULT_PRECISION == 0.015625
    assert prepared(None, {"default_precision": 0.1}).pubs[0].precision == 0.1
    assert prepared(None, {"default_precision": 0.1}, top=0.2).pubs[0].precision == 0.2
    assert prepared(0.3, {"default_precision": 0.1}, top=0.2).pubs[0].precision == 0.3
    both = {"seed_estimator": 1, "simulator": {"seed_simulator": 2}}
    assert prepared(None, both).seed == 1
    assert prepared(None, {"simulator": {"seed_simulator": 2}}).seed == 2


# --------------------------------------------------------------------------- executor


def test_client_side_estimator_through_executor(fez: BackendSnapshot, fez_target: Target) -> None:
    """The client-side Estimator measures every qubit; only the observables' qubits are run."""
    params = client_estimator_params(fez_target, ["ZZ", "XX", "ZI"], seed=7)
    output = run("executor", params, fez)
    result = decode("executor", output.result)
    evs = result[0].data.evs
    assert evs.shape == (3,)
    assert 0.9 < evs[0] < 1.1 and 0.9 < evs[1] < 1.1 and abs(evs[2]) < 0.15
    assert any("seed_simulator: 7" in line for line in output.log)
    assert all("156 qubits simulated" not in line for line in output.log)
    again = decode("executor", run("executor", params, fez).result)
    assert np.array_equal(again[0].data.evs, evs)


def test_pruning_keeps_estimator_values(fez: BackendSnapshot, fez_target: Target) -> None:
    """Noise-free, the pruned program gives the same (exact) parities as the full one."""
    params = client_estimator_params(fez_target, ["ZZ", "XX"], seed=3, randomizations=4)
    values = []
    for prune in (False, True):
        program = prepare_executor(copy.deepcopy(params), fez).program
        support = estimator_support(program)
        assert support is not None and len(support) == 2
        for item in program.items:
            item.samplex.finalize()
            if prune:
                pruned = prune_circuit(item.circuit, support)
                assert pruned is not None and pruned.parameters == item.circuit.parameters
                assert len(active_qubits(pruned)) == 3  # the pair + one qubit holding parameters
                item.circuit = pruned
        raw = run_quantum_program(AerSimulator(), program, EstimatorOptions().simulator)
        values.append(ClientSideEstimatorDecoder.decode(raw)[0].data.evs)
    assert np.allclose(values[0], [1.0, 1.0]) and np.allclose(values[1], [1.0, 1.0])


def test_executor_memory_failure(brisbane: BackendSnapshot, brisbane_target: Target) -> None:
    program = QuantumProgram(shots=10)
    program.append_circuit_item(memory_failure_circuit(brisbane_target))
    converter = QUANTUM_PROGRAM_PARAMS_CONVERTERS["v2.0"]
    params = converter.encoder(program, ExecutorOptions()).model_dump(mode="json")
    validate_params("executor", params, brisbane)
    with pytest.raises(ProgramFailure, match="Insufficient memory"):
        run_program("executor", json.dumps(params), brisbane)


# --------------------------------------------------------------------------- invalid input


def _manila_pub() -> list[Any]:
    return body("post_jobs_sampler_body.json")["params"]["pubs"][0]


def _estimator_pub() -> list[Any]:
    return body("post_jobs_estimator_body.json")["params"]["pubs"][0]


def _with(params: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    changed = copy.deepcopy(params)
    change(changed)
    return changed


_GARBAGE_QPY = base64.b64encode(zlib.compress(b"not a qpy file")).decode()
_SAMPLER = {"pubs": [_manila_pub()], "options": {}, "version": 2}
_ESTIMATOR = body("post_jobs_estimator_body.json")["params"]
_EXECUTOR = body("post_jobs_executor_sampler_body.json")["params"]
_TWO_PARAMETERS = body("post_jobs_sampler_options_body.json")["params"]["pubs"][0][0]


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(params: dict[str, Any]) -> None:
        node: Any = params
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda params: params.pop(key)


INVALID = [
    ("sampler", [], "params"),
    ("sampler", "pubs", "params"),
    ("sampler", _with(_SAMPLER, _delete("pubs")), "params.pubs"),
    ("sampler", _with(_SAMPLER, _set(["pubs"], [])), "params.pubs"),
    ("sampler", _with(_SAMPLER, _set(["pubs"], {"a": 1})), "params.pubs"),
    (
        "sampler",
        _with(_SAMPLER, _set(["pubs", 0, 0, "__value__"], "!!not base64")),
        "params.pubs[0][0]",
    ),
    (
        "sampler",
        _with(_SAMPLER, _set(["pubs", 0, 0, "__value__"], _GARBAGE_QPY)),
        "params.pubs[0][0]",
    ),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 0], 17)), "params.pubs[0][0]"),
    (
        "sampler",
        _with(_SAMPLER, _set(["pubs", 0, 0], "OPENQASM 3.0; qubit[2] q; bogus q;")),
        "params.pubs[0][0]",
    ),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0], [*_manila_pub(), 5])), "params.pubs[0]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0], [])), "params.pubs[0]"),
    (
        "sampler",
        _with(_SAMPLER, _set(["pubs", 0], [_TWO_PARAMETERS, [[0.1], [0.2], [0.3]]])),
        "params.pubs[0][1]",
    ),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0], [_TWO_PARAMETERS])), "params.pubs[0][1]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 1], [["a", "b"]])), "params.pubs[0][1]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 2], 0)), "params.pubs[0][2]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 2], -3)), "params.pubs[0][2]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 2], 1.5)), "params.pubs[0][2]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 2], "100")), "params.pubs[0][2]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 2], True)), "params.pubs[0][2]"),
    ("sampler", _with(_SAMPLER, _set(["pubs", 0, 2], 10_000_001)), "params.pubs"),
    ("sampler", _with(_SAMPLER, _set(["shots"], 0)), "params.shots"),
    ("sampler", _with(_SAMPLER, _set(["options"], [1])), "params.options"),
    (
        "sampler",
        _with(_SAMPLER, _set(["options", "default_shots"], -1)),
        "params.options.default_shots",
    ),
    (
        "sampler",
        _with(_SAMPLER, _set(["options", "simulator"], {"seed_simulator": -1})),
        "params.options.simulator.seed_simulator",
    ),
    (
        "sampler",
        _with(_SAMPLER, _set(["options", "simulator"], {"seed_simulator": 2**64})),
        "params.options.simulator.seed_simulator",
    ),
    (
        "sampler",
        _with(_SAMPLER, _set(["options", "simulator"], {"noise_model": {"a": 1}})),
        "params.options.simulator.noise_model",
    ),
    (
        "sampler",
        _with(
            _SAMPLER,
            _set(
                ["options", "simulator"],
                {"noise_model": {"__type__": "NoiseModel", "__value__": 3}},
            ),
        ),
        "params.options.simulator.noise_model",
    ),
    ("sampler", _with(_SAMPLER, _set(["version"], 1)), "params.version"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 3], 0)), "params.pubs[0][3]"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 3], -0.1)), "params.pubs[0][3]"),
    ("estimator", _with(_ESTIMATOR, _set(["precision"], "high")), "params.precision"),
    (
        "estimator",
        _with(_ESTIMATOR, _set(["options", "default_precision"], 0)),
        "params.options.default_precision",
    ),
    (
        "estimator",
        _with(_ESTIMATOR, _set(["options", "seed_estimator"], 1.5)),
        "params.options.seed_estimator",
    ),
    ("estimator", _with(_ESTIMATOR, _set(["resilience_level"], 7)), "params.resilience_level"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0], _estimator_pub()[:1])), "params.pubs[0]"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0], _estimator_pub()[0])), "params.pubs[0]"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 1], [{"IIIZQ": 1.0}])), "params.pubs[0][1]"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 1], [{"ZZ": 1.0}])), "params.pubs[0][1]"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 1], [{"IIII0": 1.0}])), "params.pubs[0][1]"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 1], [])), "params.pubs[0][1]"),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 1], None)), "params.pubs[0][1]"),
    (
        "estimator",
        _with(
            _ESTIMATOR,
            _set(["pubs", 0, 1], [{"IIIZZ": {"__type__": "complex", "__value__": [0, 1]}}]),
        ),
        "params.pubs[0][1]",
    ),
    ("estimator", _with(_ESTIMATOR, _set(["pubs", 0, 2], [[0.1, 0.2]] * 3)), "params.pubs[0]"),
    ("executor", _with(_EXECUTOR, _set(["schema_version"], "v9.9")), "params.schema_version"),
    (
        "executor",
        _with(_EXECUTOR, _set(["quantum_program", "shots"], 0)),
        "params.quantum_program.shots",
    ),
    (
        "executor",
        _with(_EXECUTOR, _set(["quantum_program", "items"], "none")),
        "params.quantum_program.items",
    ),
    (
        "executor",
        _with(_EXECUTOR, _set(["quantum_program", "meas_level"], "kerneled")),
        "params.quantum_program.meas_level",
    ),
    (
        "executor",
        _with(_EXECUTOR, lambda p: p["quantum_program"].pop("circuits")),
        "params.quantum_program.circuits",
    ),
    (
        "executor",
        _with(_EXECUTOR, _set(["quantum_program", "shots"], 10_000_001)),
        "params.quantum_program.shots",
    ),
]


@pytest.mark.parametrize(("program_id", "params", "field"), INVALID)
def test_invalid_params_name_the_field(
    program_id: str, params: Any, field: str, fez: BackendSnapshot, manila: BackendSnapshot
) -> None:
    snapshot = fez if program_id == "executor" else manila
    with pytest.raises(InvalidParams) as caught:
        validate_params(program_id, params, snapshot)
    assert caught.value.field == field, caught.value.message
    assert caught.value.message


def test_circuit_wider_than_backend(manila: BackendSnapshot) -> None:
    wide = QuantumCircuit(6)
    wide.measure_all()
    with pytest.raises(InvalidParams) as caught:
        validate_params("sampler", primitive_params([[wide]]), manila)
    assert caught.value.field == "params.pubs[0][0]"
    assert caught.value.message == "circuit has 6 qubits but backend fake_manila has 5"
    executor = body("post_jobs_executor_sampler_body.json")["params"]
    with pytest.raises(InvalidParams) as caught:
        validate_params("executor", executor, manila)
    assert caught.value.field == "params.quantum_program.items[0]"
    assert "156 qubits" in caught.value.message


def test_unknown_program(manila: BackendSnapshot) -> None:
    with pytest.raises(InvalidParams) as caught:
        validate_params("qasm3-runner", {}, manila)
    assert caught.value.field == "program_id"
    with pytest.raises(ProgramFailure) as failure:
        run_program("qasm3-runner", "{}", manila)
    assert failure.value.reason_code == REASON_INVALID_JOB


def test_stored_params_that_no_longer_validate_fail_the_job(manila: BackendSnapshot) -> None:
    with pytest.raises(ProgramFailure) as caught:
        run_program("sampler", '{"pubs": []}', manila)
    assert caught.value.reason_code == REASON_INVALID_JOB
    assert "params.pubs" in caught.value.reason


def test_qasm3_circuits_are_accepted(manila: BackendSnapshot) -> None:
    qasm = (
        'OPENQASM 3.0; include "stdgates.inc"; bit[2] c; '
        "x $0; cx $0, $1; c[0] = measure $0; c[1] = measure $1;"
    )
    params = {"pubs": [[qasm, None, 20]], "options": {"simulator": {"seed_simulator": 1}}}
    result = decode("sampler", run("sampler", params, manila).result)
    assert sum(result[0].data.c.get_counts().values()) == 20


def test_qasm3_on_physical_qubits_takes_device_wide_observables(manila: BackendSnapshot) -> None:
    # What qrmi sends: an ISA program on $1, $2 and observables as wide as the device.
    qasm = 'OPENQASM 3.0; include "stdgates.inc"; h $1; cx $1, $2;'
    params = {
        "pubs": [[qasm, [{"IIZZI": 1.0}, {"IIXXI": 1.0}, {"ZZIII": 1.0}]]],
        "options": {"seed_estimator": 3, "simulator": {"seed_simulator": 3}},
        "version": 2,
    }
    evs = decode("estimator", run("estimator", params, manila).result)[0].data.evs
    assert evs[0] > 0.8 and evs[1] > 0.8 and abs(evs[2] - 1.0) < 0.05  # idle qubits stay |0>


def test_numpy_metadata_is_sanitised() -> None:
    metadata = {"a": np.bool_(True), "b": np.int32(3), "c": np.float32(1.5), 4: (np.int64(1),)}
    decoded = json.loads(encode(sanitize(metadata)))
    assert decoded == {"a": True, "b": 3, "c": 1.5, "4": [1]}


# --------------------------------------------------------------------------- fuzzing

_MARKER_TYPES = [
    "QuantumCircuit",
    "ndarray",
    "BindingsArray",
    "ObservablesArray",
    "NoiseModel",
    "settings",
    "complex",
    "set",
    "datetime",
    "Parameter",
    "Instruction",
    "Result",
    "spmatrix",
    "_json",
    "BitArray",
    "DataBin",
    "PrimitiveResult",
    "ExecutionSpan",
    "to_json",
]
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from([_manila_pub()[0], _TWO_PARAMETERS, "IIIZZ", "ZZ"])
)


def _markers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"__type__": st.sampled_from(_MARKER_TYPES), "__value__": children},
        optional={
            "__module__": st.sampled_from(["qiskit.quantum_info.operators", "x"]),
            "__class__": st.text(max_size=8),
        },
    )


json_values = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
        | _markers(children)
    ),
    max_leaves=16,
)
primitive_like = st.fixed_dictionaries(
    {"pubs": st.lists(st.lists(json_values, max_size=5) | json_values, max_size=3)},
    optional={
        "options": st.dictionaries(
            st.sampled_from(
                ["default_shots", "default_precision", "seed_estimator", "simulator", "twirling"]
            ),
            json_values,
            max_size=3,
        ),
        "shots": json_values,
        "precision": json_values,
        "version": json_values,
        "resilience_level": json_values,
    },
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


_SAMPLER_OPTIONS = body("post_jobs_sampler_options_body.json")["params"]
_MUTABLE = {
    "sampler": (_SAMPLER_OPTIONS, _paths(_SAMPLER_OPTIONS)),
    "estimator": (_ESTIMATOR, _paths(_ESTIMATOR)),
    "executor": (_EXECUTOR, _paths(_EXECUTOR)),
}


def _check_only_invalid_params(program_id: str, params: Any, snapshot: BackendSnapshot) -> None:
    before = copy.deepcopy(params)
    try:
        validate_params(program_id, params, snapshot)
    except InvalidParams as exc:
        assert exc.field.startswith(("params", "program_id"))
    except BaseException:
        # Printed (pytest shows it with the failure) because a replay that Hypothesis finds
        # flaky reports no falsifying example.
        print(f"{program_id} params that failed: {repr(params)[:4000]}")
        raise
    # The service stores the params after validating them: validation must not change them.
    assert params == before or repr(params) == repr(before)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(program_id=st.sampled_from(sorted(PROGRAM_IDS)), params=json_values | primitive_like)
def test_arbitrary_params_raise_only_invalid_params(
    program_id: str, params: Any, manila: BackendSnapshot
) -> None:
    _check_only_invalid_params(program_id, params, manila)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_mutated_fixtures_raise_only_invalid_params(
    data: st.DataObject, fez: BackendSnapshot, manila: BackendSnapshot
) -> None:
    program_id = data.draw(st.sampled_from(sorted(_MUTABLE)))
    source, paths = _MUTABLE[program_id]
    path = data.draw(st.sampled_from(paths))
    params = _with(source, _set(list(path), data.draw(json_values)))
    _check_only_invalid_params(program_id, params, fez if program_id == "executor" else manila)
