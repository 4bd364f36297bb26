"""The `noise-learner` program: Pauli-Lindblad layer models from the backend's own noise.

A QPU learns each layer's noise by running twirled learning circuits at several depths; the
emulator knows its noise, so it derives the model the learning would converge to and runs no
circuit. For each layer of two-qubit gates, the Pauli twirl of the device model's gate channel
(the stabilizer path's `PauliNoise`: calibrated error and relaxation over the gate's duration)
gives the 15 Pauli fidelities f_Q of each gate's pair; a sparse Pauli-Lindblad channel
Π exp(λ_P D_P) has f_Q = exp(-2 Σ_{P anticommuting with Q} λ_P), so the rates follow from
one linear solve. Qubits of the layer that no gate touches relax for the layer's duration
(one-body rates); pairs that no gate joins get the rate 0 that the device model implies
(it has no crosstalk). A measurement layer (NoiseLearnerV3's TREX protocol) gets the X rate
of each qubit's readout flip.

Two client shapes share the program id: the legacy `NoiseLearner` (params `circuits`,
`options`; result `{"data": [LayerError], "metadata"}` by RuntimeEncoder) and `NoiseLearnerV3`
(params `schema_version: "v0.3"`, boxed instructions; result its schema model), both encoded
and decoded with the client's own classes and converters.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np

from emulator.simulation.errors import InvalidParams
from emulator.simulation.params import (
    RunOutput,
    Stopwatch,
    count,
    decode_circuit,
    decode_markers,
    describe_error,
    encode,
    field_of,
    format_qubits,
    parse_params_json,
    require_mapping,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from qiskit.circuit import QuantumCircuit
    from qiskit.transpiler import Target

    from emulator.domain.snapshots import BackendSnapshot
    from emulator.simulation.methods import Policy
    from emulator.simulation.stabilizer import PauliNoise

STRATEGIES = ("active", "active-accum", "active-circuit", "all")
LEGACY_DEFAULTS: dict[str, Any] = {
    "max_layers_to_learn": 4,
    "shots_per_randomization": 128,
    "num_randomizations": 32,
    "layer_pair_depths": [0, 1, 2, 4, 16, 32],
    "twirling_strategy": "active-accum",
}
"""IBM's documented defaults of the legacy NoiseLearner's options."""
V3_SCHEMA = "v0.3"
_PAULIS = "IXYZ"
Gate = tuple[str, tuple[int, int]]
Transform = Callable[[np.ndarray], np.ndarray]


# -- the model ---------------------------------------------------------------------------------


def _anticommute(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two Paulis (as IXYZ indices per qubit) anticommute."""
    return sum(1 for x, y in zip(a, b, strict=True) if x and y and x != y) % 2 == 1


def _rates(fidelities: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """Lindblad rates λ_P (P ≠ I, as IXYZ index tuples) of k qubits from Pauli fidelities
    indexed like np.kron of (I, X, Y, Z) per qubit."""
    from scipy.optimize import nnls

    paulis = [p for p in product(range(4), repeat=k) if any(p)]
    matrix = np.array([[float(_anticommute(q, p)) for p in paulis] for q in paulis])
    index = {
        p: sum(v * 4 ** (k - 1 - i) for i, v in enumerate(p)) for p in product(range(4), repeat=k)
    }
    logs = np.array([-0.5 * math.log(max(float(fidelities[index[q]]), 1e-12)) for q in paulis])
    # Non-negative, as a learned model's rates are fitted; where the channel is exactly a
    # sparse Lindblad one (the usual case) this is the exact solution, not rounded to -0.
    solved, _ = nnls(matrix, logs)
    return {p: float(rate) for p, rate in zip(paulis, solved, strict=True)}


def _fidelities(probabilities: np.ndarray | None, k: int) -> np.ndarray:
    """Pauli fidelities (eigenvalues) from Pauli error probabilities (Walsh-Hadamard)."""
    from emulator.simulation.stabilizer import pauli_signs

    if probabilities is None:
        return np.ones(4**k)
    return pauli_signs(k) @ probabilities


@dataclass(frozen=True)
class LayerModel:
    """One layer's sparse Pauli-Lindblad model on `qubits` (physical, in order)."""

    qubits: list[int]
    terms: list[tuple[tuple[int, ...], tuple[int, ...], float]]
    """(positions in `qubits`, IXYZ indices there, rate) per generator."""

    def labels(self) -> list[str]:
        """Each generator as a qiskit Pauli label over len(qubits) (position 0 rightmost)."""
        n = len(self.qubits)
        out = []
        for positions, paulis, _ in self.terms:
            chars = ["I"] * n
            for position, pauli in zip(positions, paulis, strict=True):
                chars[n - 1 - position] = _PAULIS[pauli]
            out.append("".join(chars))
        return out

    def rates(self) -> np.ndarray:
        return np.array([rate for *_, rate in self.terms], dtype=float)


def layer_model(
    noise: PauliNoise,
    gates: Sequence[Gate],
    qubits: Sequence[int],
    edges: Iterable[tuple[int, int]],
) -> LayerModel:
    """The model of a layer of two-qubit `gates` on `qubits`: every one-body generator, and
    every two-body generator of each coupled pair within `qubits`."""
    position = {q: i for i, q in enumerate(qubits)}
    one: dict[int, dict[int, float]] = {q: dict.fromkeys((1, 2, 3), 0.0) for q in qubits}
    two: dict[tuple[int, int], dict[tuple[int, int], float]] = {}
    seconds = 0.0
    for name, pair in gates:
        seconds = max(seconds, _duration(noise.target, name, pair))
        rates = _rates(_fidelities(noise.probabilities(name, pair), 2), 2)
        for (a, b), rate in rates.items():
            if a and b:
                two.setdefault(pair, {})[(a, b)] = rate
            elif a:
                one[pair[0]][a] += rate
            else:
                one[pair[1]][b] += rate
    busy = {q for _, pair in gates for q in pair}
    for q in qubits:
        if q not in busy and seconds:
            rates = _rates(_fidelities(noise.idle(q, seconds), 1), 1)
            for (a,), rate in rates.items():
                one[q][a] += rate
    terms: list[tuple[tuple[int, ...], tuple[int, ...], float]] = []
    for q in qubits:
        for a in (1, 2, 3):
            terms.append(((position[q],), (a,), one[q][a]))
    pairs = {tuple(sorted(e)) for e in edges if e[0] in position and e[1] in position}
    pairs |= {tuple(sorted(pair)) for _, pair in gates}
    for low, high in sorted(pairs):
        joined = two.get((low, high))
        flipped = two.get((high, low))
        for a, b in product((1, 2, 3), repeat=2):
            rate = 0.0
            if joined is not None:
                rate = joined.get((a, b), 0.0)
            elif flipped is not None:
                rate = flipped.get((b, a), 0.0)
            terms.append(((position[low], position[high]), (a, b), rate))
    return LayerModel(list(qubits), terms)


def readout_model(noise: PauliNoise, qubits: Sequence[int]) -> LayerModel:
    """A measurement layer: each qubit's readout flip p as an X generator, λ = -½ ln(1 - 2p)."""
    terms = []
    for i, q in enumerate(qubits):
        flip = min(sum(noise.readout(q)) / 2, 0.499)
        terms.append(((i,), (1,), -0.5 * math.log(1 - 2 * flip)))
    return LayerModel(list(qubits), terms)


def _duration(target: Target, name: str, pair: tuple[int, int]) -> float:
    table = target[name] if name in target.operation_names else None
    props = table.get(pair) if table else None
    return float(getattr(props, "duration", None) or 0.0)


def _edges(target: Target) -> set[tuple[int, int]]:
    edges = set()
    for name in target.operation_names:
        table = target[name]
        if not table:
            continue
        for qargs in table:
            if qargs is not None and len(qargs) == 2:
                edges.add((int(qargs[0]), int(qargs[1])))
    return edges


# -- layers of a circuit -------------------------------------------------------------------------


def two_qubit_layers(circuit: QuantumCircuit) -> list[tuple[Gate, ...]]:
    """The circuit's layers of two-qubit gates, in order: the single-qubit gates between them
    are the twirl's dressing and form no layer of their own."""
    from qiskit.converters import circuit_to_dag

    dag = circuit_to_dag(circuit)
    for node in list(dag.op_nodes()):
        if len(node.qargs) != 2 or node.op.name == "barrier" or node.op.num_clbits:
            dag.remove_op_node(node)
    index = {bit: i for i, bit in enumerate(circuit.qubits)}
    layers = []
    for layer in dag.layers():
        gates = tuple(
            sorted(
                (node.op.name, (index[node.qargs[0]], index[node.qargs[1]]))
                for node in layer["graph"].op_nodes()
            )
        )
        if gates:
            layers.append(gates)
    return layers


def _active(circuit: QuantumCircuit) -> list[int]:
    from emulator.simulation.noise import active_qubits

    return sorted(active_qubits(circuit))


def learned_layers(
    circuits: Sequence[QuantumCircuit], strategy: str, max_layers: int | None
) -> list[tuple[tuple[Gate, ...], list[int], int]]:
    """(gates, qubits, width) of the unique layers, the most frequent first (IBM: layers that
    occur more often are learned first; ties in the order first seen), at most `max_layers`.

    A layer is its gates on the qubits the twirling strategy names, so the same gates are two
    layers where the strategy gives them different qubits (`active-accum` later in a circuit,
    `active-circuit` in another circuit): each is learned on its own qubits.
    """
    found: Counter[tuple[tuple[Gate, ...], tuple[int, ...]]] = Counter()
    width_of: dict[tuple[tuple[Gate, ...], tuple[int, ...]], int] = {}
    for circuit in circuits:
        accumulated: set[int] = set()
        everything = None
        for gates in two_qubit_layers(circuit):
            active = {q for _, pair in gates for q in pair}
            accumulated |= active
            if strategy == "active":
                chosen = sorted(active)
            elif strategy == "active-accum":
                chosen = sorted(accumulated)
            elif strategy == "active-circuit":
                everything = everything if everything is not None else _active(circuit)
                chosen = everything
            else:
                chosen = list(range(circuit.num_qubits))
            key = (gates, tuple(chosen))
            found[key] += 1
            width_of.setdefault(key, circuit.num_qubits)
    ordered = sorted(found, key=lambda k: -found[k])  # stable: first seen first among equals
    if max_layers is not None:
        ordered = ordered[:max_layers]
    return [(gates, list(qubits), width_of[(gates, qubits)]) for gates, qubits in ordered]


# -- the legacy NoiseLearner --------------------------------------------------------------------


@dataclass(frozen=True)
class LegacyJob:
    circuits: list[QuantumCircuit]
    options: dict[str, Any]
    ignored: list[str]


def _int_option(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParams(path, f"must be an integer of at least {minimum}, got {value!r}")
    return value


def prepare_legacy(params: dict[str, Any], snapshot: BackendSnapshot) -> LegacyJob:
    circuits_value = params.get("circuits")
    if not isinstance(circuits_value, list) or not circuits_value:
        raise InvalidParams("params.circuits", "a non-empty list of circuits is required")
    circuits = [
        decode_circuit(
            decode_markers(c, f"params.circuits[{i}]"), f"params.circuits[{i}]", snapshot
        )
        for i, c in enumerate(circuits_value)
    ]
    raw = params.get("options") or {}
    if not isinstance(raw, dict):
        raise InvalidParams("params.options", "must be an object")
    options = dict(LEGACY_DEFAULTS)
    ignored = []
    for key, value in raw.items():
        path = f"params.options.{key}"
        if key == "max_layers_to_learn":
            options[key] = None if value is None else _int_option(value, path, 0)
        elif key in ("shots_per_randomization", "num_randomizations"):
            options[key] = _int_option(value, path, 1)
        elif key == "layer_pair_depths":
            if not isinstance(value, list) or not value:
                raise InvalidParams(path, "must be a non-empty list of depths")
            options[key] = [_int_option(v, f"{path}[{i}]", 0) for i, v in enumerate(value)]
        elif key == "twirling_strategy":
            if value not in STRATEGIES:
                raise InvalidParams(path, f"must be one of {', '.join(STRATEGIES)}")
            options[key] = value
        elif key != "support_qiskit":
            ignored.append(key)
    return LegacyJob(circuits, options, ignored)


def _run_legacy(
    job: LegacyJob,
    snapshot: BackendSnapshot,
    noise: PauliNoise,
    log: list[str],
    transform: Transform | None = None,
) -> tuple[str, int]:
    """The result body, and how many layers it models."""
    from qiskit.circuit import QuantumCircuit
    from qiskit.quantum_info import PauliList
    from qiskit_ibm_runtime.results.noise_learner import LayerError, PauliLindbladError

    options = job.options
    layers = learned_layers(
        job.circuits, options["twirling_strategy"], options["max_layers_to_learn"]
    )
    log.append(
        f"noise-learner: {count(len(job.circuits), 'circuit')}, {count(len(layers), 'layer')} "
        f"to learn (twirling_strategy {options['twirling_strategy']}, max_layers_to_learn "
        f"{options['max_layers_to_learn']})"
    )
    if job.ignored:
        log.append(f"options without effect on the emulator: {', '.join(job.ignored)}")
    edges = _edges(noise.target)
    data = []
    for gates, qubits, _ in layers:
        model = layer_model(noise, gates, qubits, edges)
        # The layer's circuit is on its own qubits: circuit qubit i is device qubit qubits[i].
        position = {q: i for i, q in enumerate(qubits)}
        layer = QuantumCircuit(len(qubits))
        for name, pair in gates:
            layer.append(_gate(noise.target, name), [position[q] for q in pair])
        rates = model.rates() if transform is None else transform(model.rates())
        error = PauliLindbladError(PauliList(model.labels()), rates)
        data.append(LayerError(layer, list(qubits), error))
        log.append(
            f"layer {', '.join(f'{n}{list(p)}' for n, p in gates)} on "
            f"{format_qubits(set(qubits))}: {len(model.terms)} generators"
        )
    # IBM echoes max_execution_time among the input options (None: the job has its own).
    metadata = {"backend": snapshot.name, "input_options": {"max_execution_time": None, **options}}
    return encode({"data": data, "metadata": metadata}), len(data)


def _gate(target: Target, name: str) -> Any:
    return target.operation_from_name(name)


# -- NoiseLearnerV3 -----------------------------------------------------------------------------


def prepare_v3(params: dict[str, Any]) -> tuple[QuantumCircuit, Any]:
    """The instructions' circuit (its qubits are the device's) and the options, by the
    client's schema model and converter."""
    from pydantic import ValidationError
    from qiskit_ibm_runtime.noise_learner_v3.converters.version_0_3 import (
        noise_learner_v3_inputs_from_0_3,
    )
    from qiskit_ibm_runtime.noise_learner_v3.params_converters import (
        NOISE_LEARNER_V3_PARAMS_CONVERTERS,
    )

    converter = NOISE_LEARNER_V3_PARAMS_CONVERTERS[V3_SCHEMA]
    body = {k: v for k, v in params.items() if k != "version"}
    try:
        model = converter.model(**body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise InvalidParams(field_of("params", tuple(first.get("loc", ()))), first["msg"]) from exc
    except Exception as exc:  # noqa: BLE001 - payload decoding inside validators
        raise InvalidParams("params.instructions", describe_error(exc)) from exc
    try:
        circuit = model.instructions.to_quantum_circuit()
        _, options = noise_learner_v3_inputs_from_0_3(model)
    except Exception as exc:  # noqa: BLE001 - QPY decoding, options the converter rejects
        raise InvalidParams("params.instructions", describe_error(exc)) from exc
    return circuit, options


def physical_qubits(qubits: Sequence[Any], width: int, index: int) -> list[int]:
    """Device indices of an instruction's qubits. The client builds the instructions' circuit
    on only the qubits they use, each still a bit of the device's register
    `QuantumRegister(num_qubits, "q")` (its validation requires it), which says the index."""
    from qiskit.circuit import QuantumRegister

    device = {bit: i for i, bit in enumerate(QuantumRegister(width, "q"))}
    try:
        return [device[q] for q in qubits]
    except KeyError:
        raise InvalidParams(
            f"params.instructions[{index}]",
            f"acts on a qubit outside the device register QuantumRegister({width}, 'q')",
        ) from None


def _run_v3(
    circuit: QuantumCircuit, noise: PauliNoise, log: list[str], transform: Transform | None = None
) -> str:
    from qiskit.quantum_info import QubitSparsePauliList
    from qiskit_ibm_runtime.noise_learner_v3.converters.version_0_3 import (
        noise_learner_v3_result_to_0_3,
    )
    from qiskit_ibm_runtime.results.noise_learner_v3 import (
        NoiseLearnerV3Result,
        NoiseLearnerV3Results,
    )

    log.append(f"noise-learner (v3): {count(len(circuit.data), 'instruction')}")
    edges = _edges(noise.target)
    results = []
    for index, instruction in enumerate(circuit.data):
        body = instruction.operation.blocks[0] if instruction.operation.blocks else None
        if body is None:
            raise InvalidParams(f"params.instructions[{index}]", "must be a box")
        physical = physical_qubits(instruction.qubits, noise.target.num_qubits, index)
        inner = {bit: physical[i] for i, bit in enumerate(body.qubits)}
        measured = [inner[i.qubits[0]] for i in body.data if i.operation.name == "measure"]
        if measured:
            model = readout_model(noise, physical)
            metadata: dict[str, Any] = {
                "learning_protocol": "trex",
                "post_selection": {"fraction_kept": 1.0, "success_rates": {}},
            }
        else:
            gates = [
                (i.operation.name, (inner[i.qubits[0]], inner[i.qubits[1]]))
                for i in body.data
                if len(i.qubits) == 2 and i.operation.name != "barrier"
            ]
            model = layer_model(noise, gates, physical, edges)
            metadata = {
                "learning_protocol": "lindblad",
                "post_selection": {"fraction_kept": {}, "success_rates": {}},
            }
        n = len(physical)
        generators = [
            QubitSparsePauliList.from_sparse_list(
                [("".join(_PAULIS[p] for p in paulis), list(positions))], num_qubits=n
            )
            for positions, paulis, _ in model.terms
        ]
        rates = model.rates() if transform is None else transform(model.rates())
        results.append(
            NoiseLearnerV3Result.from_generators(
                generators, rates, np.zeros_like(rates), metadata=metadata
            )
        )
        log.append(
            f"instruction {index}: {metadata['learning_protocol']} on "
            f"{format_qubits(set(physical))}, {len(model.terms)} generators"
        )
    return noise_learner_v3_result_to_0_3(NoiseLearnerV3Results(results)).model_dump_json()


# -- the program ---------------------------------------------------------------------------------


def is_v3(params: Any) -> bool:
    return isinstance(params, dict) and params.get("schema_version") is not None


def prepare_noise_learner(
    params: Any, snapshot: BackendSnapshot
) -> LegacyJob | tuple[QuantumCircuit, Any]:
    """Request-path check; raises InvalidParams naming the field."""
    params = require_mapping(params, "params")
    if is_v3(params):
        if params.get("schema_version") != V3_SCHEMA:
            raise InvalidParams(
                "params.schema_version",
                f"unsupported schema version {params.get('schema_version')!r}; this emulator "
                f"accepts {V3_SCHEMA!r}",
            )
        return prepare_v3(params)
    return prepare_legacy(params, snapshot)


def run_noise_learner_body(
    params: Any,
    snapshot: BackendSnapshot,
    transform: Transform | None = None,
    log: list[str] | None = None,
) -> tuple[str, list[tuple[QuantumCircuit, int]]]:
    """The result body, and (circuit, executions) of the learning a QPU would run (for a dry
    run's usage estimate: per layer, every depth's randomizations in 9 bases)."""
    from qiskit.circuit import QuantumCircuit

    from emulator.simulation.noise import backend_target
    from emulator.simulation.stabilizer import PauliNoise

    log = [] if log is None else log
    prepared = prepare_noise_learner(params, snapshot)  # decoded once, then run
    noise = PauliNoise(backend_target(snapshot))
    if isinstance(prepared, LegacyJob):
        body, layers = _run_legacy(prepared, snapshot, noise, log, transform)
        shots = prepared.options["num_randomizations"] * prepared.options["shots_per_randomization"]
        depths = len(prepared.options["layer_pair_depths"])
    else:
        circuit, options = prepared
        body = _run_v3(circuit, noise, log, transform)
        layers = len(circuit.data)
        shots = options.num_randomizations * options.shots_per_randomization
        depths = len(options.layer_pair_depths)
    return body, [(QuantumCircuit(1), layers * shots * depths * 9)]


def run_noise_learner(
    params_json: str, snapshot: BackendSnapshot, policy: Policy | None = None
) -> RunOutput:
    """Layer models from the snapshot's calibration; no circuit is simulated."""
    from emulator.simulation.aer import collected_warnings

    log: list[str] = []
    with collected_warnings(log), Stopwatch() as watch:
        body, _ = run_noise_learner_body(parse_params_json(params_json), snapshot, log=log)
        log.append(
            f"rates derived from {snapshot.name} calibration (snapshot {snapshot.source}): the "
            "Pauli twirl of each gate's device noise; no learning circuits run"
        )
    return RunOutput(result=body, log=log, quantum_seconds=watch.seconds)
