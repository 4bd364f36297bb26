"""The `sampler` program: SamplerV2 pubs run on qiskit-aer with the snapshot's noise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives.containers import PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_ibm_runtime.execution_span import ExecutionSpans, SliceSpan

from emulator.simulation.errors import REASON_INVALID_JOB, InvalidParams, ProgramFailure
from emulator.simulation.kerneled import MEAS_TYPES
from emulator.simulation.params import (
    DEFAULT_SHOTS,
    RunOutput,
    SimulatorSettings,
    Stopwatch,
    bound_circuits,
    check_executions,
    coerce_bindings,
    count,
    decode_circuit,
    decode_markers,
    decoded_options,
    describe_error,
    encode,
    ignored_keys,
    new_seed,
    parse_params_json,
    positive_int,
    sanitize,
)

if TYPE_CHECKING:
    from emulator.domain.snapshots import BackendSnapshot
    from emulator.simulation.methods import Policy

_USED_OPTIONS = {"default_shots", "simulator"}


@dataclass(frozen=True)
class SamplerJob:
    """Validated sampler input, ready to simulate."""

    pubs: list[SamplerPub]
    simulator: SimulatorSettings
    ignored_options: list[str]
    meas_type: str = "classified"


def pubs_list(params: dict[str, Any]) -> list[Any]:
    """The non-empty `params.pubs` array."""
    pubs = params.get("pubs")
    if not isinstance(pubs, list):
        raise InvalidParams("params.pubs", "expected a non-empty array of pubs")
    if not pubs:
        raise InvalidParams("params.pubs", "at least one pub is required")
    return pubs


def prepare_sampler(params: Any, snapshot: BackendSnapshot) -> SamplerJob:
    """Decode and check sampler params; raises InvalidParams naming the field."""
    params, options, settings = decoded_options(params)

    # Precedence: pub shots > params.shots (IBM schema) > options.default_shots > 4096.
    default_shots = DEFAULT_SHOTS
    if options.get("default_shots") is not None:
        default_shots = positive_int(options["default_shots"], "params.options.default_shots")
    if params.get("shots") is not None:
        default_shots = positive_int(params["shots"], "params.shots")

    pubs = [
        coerce_sampler_pub(
            decode_markers(raw, f"params.pubs[{i}]"), f"params.pubs[{i}]", default_shots, snapshot
        )
        for i, raw in enumerate(pubs_list(params))
    ]
    check_executions(sum(pub.shots * pub.parameter_values.size for pub in pubs), "params.pubs")
    execution = options.get("execution")
    meas_type = "classified"
    if execution is not None:
        if not isinstance(execution, dict):
            raise InvalidParams("params.options.execution", "must be an object")
        meas_type = execution.get("meas_type") or "classified"
        if meas_type not in MEAS_TYPES:
            raise InvalidParams(
                "params.options.execution.meas_type", f"must be one of {', '.join(MEAS_TYPES)}"
            )
    return SamplerJob(
        pubs=pubs,
        simulator=settings,
        ignored_options=ignored_keys(options, _USED_OPTIONS),
        meas_type=meas_type,
    )


def coerce_sampler_pub(
    pub: Any, path: str, default_shots: int, snapshot: BackendSnapshot
) -> SamplerPub:
    """A bare circuit, [circuit], [circuit, values] or [circuit, values, shots]."""
    if isinstance(pub, QuantumCircuit | str):
        circuit = decode_circuit(pub, path, snapshot)
        items: list[Any] = [circuit]
    elif isinstance(pub, list):
        if not 1 <= len(pub) <= 3:
            raise InvalidParams(
                path, f"a sampler pub is [circuit, parameter_values, shots]; got {len(pub)} items"
            )
        items = pub
        circuit = decode_circuit(items[0], f"{path}[0]", snapshot)
    else:
        raise InvalidParams(path, "expected a circuit or [circuit, parameter_values, shots]")

    bindings = coerce_bindings(circuit, items[1] if len(items) > 1 else None, f"{path}[1]")
    shots = default_shots
    if len(items) > 2 and items[2] is not None:
        shots = positive_int(items[2], f"{path}[2]")
    try:
        return SamplerPub(circuit=circuit, parameter_values=bindings, shots=shots, validate=True)
    except Exception as exc:  # qiskit raises ValueError/TypeError
        raise InvalidParams(path, describe_error(exc)) from exc


def shape_result(
    result: PrimitiveResult,
    pubs: list[SamplerPub],
    spans: SliceSpan,
    simulator: dict[str, str] | None = None,
) -> PrimitiveResult:
    """IBM-shaped result: pub metadata {shots, circuit_metadata}; execution spans on top, and
    the emulator's `simulator` (method, why, noise) beside them."""
    pub_results = [
        SamplerPubResult(
            pub_result.data,
            metadata={
                "shots": pub.shots,
                "circuit_metadata": sanitize(dict(pub.circuit.metadata or {})),
            },
        )
        for pub_result, pub in zip(result, pubs, strict=True)
    ]
    metadata: dict[str, Any] = {"execution": {"execution_spans": ExecutionSpans([spans])}}
    if simulator is not None:
        metadata["simulator"] = simulator
    metadata["version"] = 2
    return PrimitiveResult(pub_results, metadata=metadata)


def execution_span(pubs: list[SamplerPub], start: Any, stop: Any) -> SliceSpan:
    """One span covering every shot of every pub (they all ran in one simulation)."""
    slices = {}
    for index, pub in enumerate(pubs):
        shape = (*pub.shape, pub.shots)
        slices[index] = (shape, slice(0, math.prod(shape)))
    return SliceSpan(start, stop, slices)


def run_sampler(
    params_json: str, snapshot: BackendSnapshot, policy: Policy | None = None
) -> RunOutput:
    """Simulate stored sampler params; raises ProgramFailure for simulator refusals."""
    from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

    from emulator.domain.methods import MATRIX_PRODUCT_STATE, STABILIZER
    from emulator.simulation.aer import collected_warnings, method_and_noise, simulate
    from emulator.simulation.methods import Policy, Run, refuse_if_too_long
    from emulator.simulation.noise import active_qubits, make_simulator

    log: list[str] = []
    with collected_warnings(log):
        job = prepare_sampler(parse_params_json(params_json), snapshot)
        seed = job.simulator.seed if job.simulator.seed is not None else new_seed()
        active: set[int] = set()
        log.append(
            f"sampler: {len(job.pubs)} pub(s) on {snapshot.name} (snapshot {snapshot.source})"
        )
        for index, pub in enumerate(job.pubs):
            qubits = active_qubits(pub.circuit)
            active |= qubits
            log.append(
                f"pub {index}: {pub.circuit.num_qubits}-qubit circuit, "
                f"{count(len(qubits), 'qubit')} simulated, parameter shape {pub.shape}, "
                f"{pub.shots} shots"
            )
        policy = policy or Policy()
        circuits = (c for pub in job.pubs for c in bound_circuits(pub))
        runs = [Run(p.circuit, p.shots, max(1, math.prod(p.shape))) for p in job.pubs]
        kerneled = job.meas_type != "classified"
        choice, noise_model, noise_text = method_and_noise(
            policy, circuits, active, job.simulator, snapshot, log, runs, readout=not kerneled
        )
        if kerneled and choice.method in (STABILIZER, MATRIX_PRODUCT_STATE):
            raise ProgramFailure(
                f"meas_type {job.meas_type!r} is simulated on the statevector and density "
                f"matrix; this job needs the {choice.method} method ({choice.reason})",
                REASON_INVALID_JOB,
                "Use meas_type 'classified' for circuits of this width, or fewer qubits.",
            )
        ideal = job.simulator.noise_model is not None
        refuse_if_too_long(policy.max_job_seconds, choice, runs, noise_model, ideal)
        source = "options.simulator.seed_simulator" if job.simulator.seed is not None else "random"
        log.append(f"seed_simulator: {seed} ({source})")
        if job.ignored_options:
            log.append(f"options without effect on the emulator: {', '.join(job.ignored_options)}")
        if job.simulator.unused:
            log.append(f"simulator options ignored: {', '.join(job.simulator.unused)}")

        with Stopwatch() as watch:
            if choice.method == STABILIZER:
                result = simulate(lambda: sample_stabilizer(job.pubs, snapshot, seed, ideal))
            elif choice.method == MATRIX_PRODUCT_STATE:
                from emulator.simulation.mps import sample_mps

                result = simulate(lambda: sample_mps(job.pubs, snapshot, seed, ideal))
            else:
                simulator = make_simulator(noise_model, choice.aer_method)
                sampler = AerSamplerV2.from_backend(simulator, seed=seed)
                result = simulate(lambda: sampler.run(job.pubs).result())
        log.append(f"simulated in {watch.seconds:.3f} s")
        if kerneled:
            result = kernel(result, job, snapshot, seed, log)
        shaped = shape_result(
            result,
            job.pubs,
            execution_span(job.pubs, watch.start, watch.stop),
            simulator=choice.metadata(noise_text.removeprefix("noise: ")),
        )
        body = encode(shaped)
    return RunOutput(result=body, log=log, quantum_seconds=watch.seconds)


def kernel(
    result: PrimitiveResult, job: SamplerJob, snapshot: BackendSnapshot, seed: int, log: list[str]
) -> PrimitiveResult:
    """Each register's bits (simulated without readout error) as IQ points (`kerneled`)."""
    from qiskit.primitives.containers import DataBin

    from emulator.simulation.kerneled import IDEAL_SPREAD, iq_points
    from emulator.simulation.noise import backend_target
    from emulator.simulation.stabilizer import PauliNoise

    if job.simulator.noise_model is None:
        noise = PauliNoise(backend_target(snapshot))
        errors = {q: sum(noise.readout(q)) / 2 for q in range(snapshot.num_qubits)}
        log.append(f"meas_type {job.meas_type}: IQ spread from each qubit's readout error")
    else:
        errors = {}
        log.append(
            f"meas_type {job.meas_type}: IQ spread {IDEAL_SPREAD} (the custom noise model's "
            "readout errors are in the bits)"
        )
    rng = np.random.default_rng(seed)
    average = job.meas_type == "avg_kerneled"
    pubs = []
    for pub_result, pub in zip(result, job.pubs, strict=True):
        registers = {
            register.name: iq_points(
                getattr(pub_result.data, register.name),
                list(register),
                pub.circuit,
                errors,
                rng,
                average,
            )
            for register in pub.circuit.cregs
        }
        pubs.append(SamplerPubResult(DataBin(**registers, shape=pub.shape)))
    return PrimitiveResult(pubs)


def sample_stabilizer(
    pubs: list[SamplerPub], snapshot: BackendSnapshot, seed: int, ideal: bool
) -> PrimitiveResult:
    """Every pub sampled by stim (`stabilizer.py`), in the shape Aer's SamplerV2 returns."""
    import numpy as np
    from qiskit.primitives.containers import BitArray, DataBin

    from emulator.simulation.noise import backend_target
    from emulator.simulation.stabilizer import PauliNoise, sample, to_stim

    noise = None if ideal else PauliNoise(backend_target(snapshot))
    seeds = np.random.default_rng(seed)
    results = []
    for pub in pubs:
        per_binding = [
            sample(to_stim(circuit, noise), pub.shots, int(seeds.integers(2**63)))
            for circuit in bound_circuits(pub)
        ]
        bits = np.stack(per_binding).reshape(*pub.shape, pub.shots, pub.circuit.num_clbits)
        registers = {}
        for register in pub.circuit.cregs:
            columns = [pub.circuit.find_bit(bit).index for bit in register]
            registers[register.name] = BitArray.from_bool_array(bits[..., columns], order="little")
        results.append(SamplerPubResult(DataBin(**registers, shape=pub.shape)))
    return PrimitiveResult(results)
