"""The `estimator` program: EstimatorV2 pubs run on qiskit-aer with the snapshot's noise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit.primitives.containers import DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.quantum_info import SparseObservable

from emulator.simulation.errors import REASON_INVALID_JOB, InvalidParams, ProgramFailure
from emulator.simulation.mitigation import Mitigation, describe, mitigation_options
from emulator.simulation.params import (
    DEFAULT_PRECISION,
    RunOutput,
    SimulatorSettings,
    Stopwatch,
    bound_circuits,
    coerce_bindings,
    count,
    decode_circuit,
    decode_markers,
    decoded_options,
    describe_error,
    encode,
    ignored_keys,
    new_seed,
    optional_seed,
    parse_params_json,
    positive_int,
    positive_real,
    sanitize,
)
from emulator.simulation.sampler import pubs_list

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit

    from emulator.domain.snapshots import BackendSnapshot
    from emulator.simulation.methods import Policy

_USED_OPTIONS = {
    "default_precision",
    "default_shots",
    "seed_estimator",
    "simulator",
    "resilience_level",
    "resilience",
    "twirling",
    "dynamical_decoupling",
}
_PAULI_TERMS = frozenset(
    int(t)
    for t in (SparseObservable.BitTerm.X, SparseObservable.BitTerm.Y, SparseObservable.BitTerm.Z)
)


@dataclass(frozen=True)
class EstimatorJob:
    """Validated estimator input, ready to simulate."""

    pubs: list[EstimatorPub]
    seed: int | None
    seed_source: str
    simulator: SimulatorSettings
    mitigation: Mitigation
    ignored_options: list[str]


def _resilience_level(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2:
        raise InvalidParams(path, f"must be 0, 1 or 2, got {value!r}")
    return value


def prepare_estimator(params: Any, snapshot: BackendSnapshot) -> EstimatorJob:
    """Decode and check estimator params; raises InvalidParams naming the field."""
    params, options, settings = decoded_options(params)

    # Precedence: pub precision > params.precision (IBM schema) > options.default_precision.
    default_precision = DEFAULT_PRECISION
    if options.get("default_precision") is not None:
        default_precision = positive_real(
            options["default_precision"], "params.options.default_precision"
        )
    if params.get("precision") is not None:
        default_precision = positive_real(params["precision"], "params.precision")
    if options.get("default_shots") is not None:
        # IBM: default_shots overrides default_precision, as precision 1/√shots.
        shots = positive_int(options["default_shots"], "params.options.default_shots")
        default_precision = 1 / math.sqrt(shots)

    seed = optional_seed(options.get("seed_estimator"), "params.options.seed_estimator")
    seed_source = "options.seed_estimator"
    if seed is None and settings.seed is not None:
        seed, seed_source = settings.seed, "options.simulator.seed_simulator"

    level = _resilience_level(params.get("resilience_level"), "params.resilience_level")
    option_level = _resilience_level(
        options.get("resilience_level"), "params.options.resilience_level"
    )

    pubs = [
        coerce_estimator_pub(
            decode_markers(raw, f"params.pubs[{i}]"),
            f"params.pubs[{i}]",
            default_precision,
            snapshot,
        )
        for i, raw in enumerate(pubs_list(params))
    ]
    return EstimatorJob(
        pubs=pubs,
        seed=seed,
        seed_source=seed_source,
        simulator=settings,
        mitigation=mitigation_options(level if level is not None else option_level, options),
        ignored_options=ignored_keys(options, _USED_OPTIONS),
    )


def coerce_estimator_pub(
    pub: Any, path: str, default_precision: float, snapshot: BackendSnapshot
) -> EstimatorPub:
    """[circuit, observables], [.., parameter_values] or [.., parameter_values, precision]."""
    if not isinstance(pub, list) or not 2 <= len(pub) <= 4:
        raise InvalidParams(
            path, "an estimator pub is [circuit, observables, parameter_values, precision]"
        )
    circuit = decode_circuit(pub[0], f"{path}[0]", snapshot)
    observables = coerce_observables(pub[1], circuit, f"{path}[1]")
    bindings = coerce_bindings(circuit, pub[2] if len(pub) > 2 else None, f"{path}[2]")
    precision = default_precision
    if len(pub) > 3 and pub[3] is not None:
        precision = positive_real(pub[3], f"{path}[3]")
    try:
        return EstimatorPub(
            circuit=circuit,
            observables=observables,
            parameter_values=bindings,
            precision=precision,
            validate=True,
        )
    except (
        Exception
    ) as exc:  # qiskit raises ValueError/TypeError (e.g. shapes that don't broadcast)
        raise InvalidParams(path, describe_error(exc)) from exc


def coerce_observables(value: Any, circuit: QuantumCircuit, path: str) -> ObservablesArray:
    """Hermitian Pauli observables exactly as wide as the circuit."""
    if value is None:
        raise InvalidParams(path, "observables are required")
    try:
        observables = ObservablesArray.coerce(value)
        observables.validate()
    except Exception as exc:  # qiskit raises ValueError/TypeError/QiskitError
        raise InvalidParams(path, f"invalid observables: {describe_error(exc)}") from exc
    if observables.size == 0:
        raise InvalidParams(path, "at least one observable is required")
    if observables.num_qubits != circuit.num_qubits:
        raise InvalidParams(
            path,
            f"observables act on {observables.num_qubits} qubits but the circuit has "
            f"{circuit.num_qubits}",
        )
    for observable in observables.sparse_observables_array().ravel():
        if not _PAULI_TERMS.issuperset(int(t) for t in observable.bit_terms):
            raise InvalidParams(path, "only Pauli observables (I, X, Y, Z) are supported")
    return observables


def observable_support(observables: ObservablesArray) -> set[int]:
    """Qubits on which some observable acts non-trivially."""
    support: set[int] = set()
    for observable in observables.sparse_observables_array().ravel():
        support.update(int(i) for i in np.asarray(observable.indices))
    return support


def with_support(circuit: QuantumCircuit, support: set[int]) -> QuantumCircuit:
    """The circuit as its pub is simulated, for choosing the method and estimating the time:
    every qubit an observable reads is measured (in its Pauli's basis), so it counts, even
    where the circuit leaves it alone (an `X` on all 127 qubits of a 3-qubit circuit is a
    127-qubit simulation). Identity gates mark them; the copy never runs."""
    from emulator.simulation.noise import active_qubits

    missing = support - active_qubits(circuit)
    if not missing:
        return circuit
    marked = circuit.copy()
    for qubit in sorted(missing):
        marked.id(qubit)
    return marked


def pub_shots(pub: EstimatorPub) -> int:
    """The shots a precision stands for (IBM: shots = ⌈1/precision²⌉)."""
    return max(1, math.ceil(1 / float(pub.precision) ** 2))


def value_limits(pub: EstimatorPub) -> np.ndarray:
    """What each of the pub's values can reach in magnitude, ±Σ|coefficients| of its
    observable, in the pub's shape."""
    observables = pub.observables.sparse_observables_array()
    norms = [float(np.sum(np.abs(o.coeffs))) for o in observables.ravel()]
    return np.broadcast_to(np.reshape(norms, observables.shape), pub.shape)


def _bounded(data: DataBin, pub: EstimatorPub) -> DataBin:
    """The pub's values within what each observable can take (±Σ|coefficients|): the shot
    noise drawn around a value near ±1 must not leave the physical range."""
    limit = value_limits(pub)
    # np.clip of a 0-d array is a scalar: keep the pub's shape (a float has no `.shape`).
    evs = np.asarray(np.clip(np.asarray(data.evs, dtype=float), -limit, limit)).reshape(pub.shape)
    return DataBin(evs=evs, stds=data.stds, shape=pub.shape)


def shape_result(
    result: PrimitiveResult, pubs: list[EstimatorPub], simulator: dict[str, str] | None = None
) -> PrimitiveResult:
    """IBM-shaped result: evs (within the observables' range)/stds with {target_precision,
    shots, circuit_metadata} per pub; the emulator's `simulator` (method, why, noise) beside
    the version."""
    pub_results = [
        PubResult(
            _bounded(pub_result.data, pub),
            metadata={
                "target_precision": float(pub.precision),
                "shots": pub_shots(pub),
                "circuit_metadata": sanitize(dict(pub.circuit.metadata or {})),
            },
        )
        for pub_result, pub in zip(result, pubs, strict=True)
    ]
    metadata: dict[str, Any] = {"simulator": simulator} if simulator is not None else {}
    metadata["version"] = 2
    return PrimitiveResult(pub_results, metadata=metadata)


def estimate_stabilizer(
    pubs: list[EstimatorPub], snapshot: BackendSnapshot, seed: int, ideal: bool
) -> PrimitiveResult:
    """Every pub's expectation values from stim samples (`stabilizer.py`): 1/precision² shots
    per Pauli term, stds the standard error of those samples."""
    from emulator.simulation.noise import backend_target
    from emulator.simulation.stabilizer import PauliNoise, pauli_expectation, to_stim

    noise = None if ideal else PauliNoise(backend_target(snapshot))
    seeds = np.random.default_rng(seed)
    results = []
    for pub in pubs:
        shots = max(1, math.ceil(1 / float(pub.precision) ** 2))
        programs = [to_stim(c, noise) for c in bound_circuits(pub)]
        parameter_shape = pub.parameter_values.shape
        which_program = np.broadcast_to(
            np.arange(len(programs)).reshape(parameter_shape), pub.shape
        )
        observables = pub.observables.sparse_observables_array()
        which_observable = np.broadcast_to(
            np.arange(observables.size).reshape(observables.shape), pub.shape
        )
        flat = observables.ravel()
        evs, stds = np.zeros(pub.shape), np.zeros(pub.shape)
        for index in np.ndindex(pub.shape):
            program = programs[int(which_program[index])]
            value, variance = 0.0, 0.0
            for term in flat[int(which_observable[index])]:
                pauli = tuple(
                    (int(q), int(b)) for q, b in zip(term.indices, term.bit_terms, strict=True)
                )
                coeff = float(np.real(term.coeff))
                expectation = pauli_expectation(
                    program, pauli, shots, int(seeds.integers(2**63))
                )
                value += coeff * expectation
                if pauli:
                    variance += coeff**2 * (1 - expectation**2) / shots
            evs[index], stds[index] = value, math.sqrt(variance)
        results.append(PubResult(DataBin(evs=evs, stds=stds, shape=pub.shape)))
    return PrimitiveResult(results)


def run_estimator(
    params_json: str, snapshot: BackendSnapshot, policy: Policy | None = None
) -> RunOutput:
    """Simulate stored estimator params; raises ProgramFailure for simulator refusals."""
    from emulator.domain.methods import MATRIX_PRODUCT_STATE, STABILIZER
    from emulator.simulation.aer import collected_warnings, method_and_noise, simulate
    from emulator.simulation.methods import (
        Policy,
        Run,
        refuse_if_too_long,
    )
    from emulator.simulation.noise import active_qubits, make_simulator

    log: list[str] = []
    with collected_warnings(log):
        job = prepare_estimator(parse_params_json(params_json), snapshot)
        seed, seed_source = job.seed, job.seed_source
        if seed is None:
            seed, seed_source = new_seed(), "random"
        log.append(
            f"estimator: {len(job.pubs)} pub(s) on {snapshot.name} (snapshot {snapshot.source})"
        )
        active: set[int] = set()
        for index, pub in enumerate(job.pubs):
            qubits = active_qubits(pub.circuit) | observable_support(pub.observables)
            active |= qubits
            log.append(
                f"pub {index}: {pub.circuit.num_qubits}-qubit circuit, "
                f"{count(len(qubits), 'qubit')} simulated, "
                f"{count(pub.observables.size, 'observable')}, parameter shape "
                f"{pub.parameter_values.shape}, result shape {pub.shape}, precision {pub.precision}"
            )
        circuits = (c for pub in job.pubs for c in bound_circuits(pub))
        policy = policy or Policy()
        runs = [
            Run(
                with_support(p.circuit, observable_support(p.observables)),
                *job.mitigation.work(pub_shots(p), max(1, p.parameter_values.size)),
            )
            for p in job.pubs
        ]
        choice, noise_model, noise_text = method_and_noise(
            policy, circuits, active, job.simulator, snapshot, log, runs, program="estimator"
        )
        ideal = job.simulator.noise_model is not None
        refuse_if_too_long(policy.max_job_seconds, choice, runs, noise_model, ideal)
        log.append(f"seed: {seed} ({seed_source})")
        mitigation = job.mitigation
        log.append(describe(mitigation))
        log.extend(mitigation.notes)
        if job.ignored_options:
            log.append(f"options without effect on the emulator: {', '.join(job.ignored_options)}")
        if job.simulator.unused:
            log.append(f"simulator options ignored: {', '.join(job.simulator.unused)}")

        simulator_metadata = choice.metadata(noise_text.removeprefix("noise: "))
        if choice.method in (STABILIZER, MATRIX_PRODUCT_STATE):
            if mitigation.mitigated:
                raise ProgramFailure(
                    f"{describe(mitigation)} is simulated for circuits the statevector method "
                    f"can take; this job needs the {choice.method} method ({choice.reason})",
                    REASON_INVALID_JOB,
                    "Use resilience_level 0 or 1 without zne_mitigation or "
                    "twirling.enable_gates for circuits of this width, or fewer qubits.",
                )
            # These paths measure each Pauli product exactly, without readout error: what
            # TREX estimates, so level 1 holds; level 0's readout bias is not drawn.
            log.append(
                f"{choice.method}: expectation values without readout error (as TREX gives them)"
            )
            with Stopwatch() as watch:
                if choice.method == STABILIZER:
                    result = simulate(lambda: estimate_stabilizer(job.pubs, snapshot, seed, ideal))
                else:
                    from emulator.simulation.mps import estimate_mps

                    result = simulate(lambda: estimate_mps(job.pubs, snapshot, seed, ideal))
            shaped = shape_result(result, job.pubs, simulator_metadata)
            shaped.metadata.update(mitigation.metadata())
        else:
            from emulator.simulation.mitigation import estimate_mitigated

            simulator = make_simulator(noise_model, choice.aer_method)
            with Stopwatch() as watch:
                pub_results, lines = simulate(
                    lambda: estimate_mitigated(job.pubs, mitigation, simulator, seed)
                )
            log.extend(lines)
            shaped = PrimitiveResult(
                pub_results,
                metadata={
                    "simulator": simulator_metadata,
                    **mitigation.metadata(),
                    "version": 2,
                },
            )
        log.append(f"simulated in {watch.seconds:.3f} s")
        body = encode(shaped)
    return RunOutput(result=body, log=log, quantum_seconds=watch.seconds)
