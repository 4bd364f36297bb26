"""Dry runs: jobs on a `mock_*` backend (the client's `run(..., dry_run=True)`).

IBM validates a dry-run job as it would a real one, estimates its usage and returns results
that keep the schema but hold randomized mock data. So does the emulator: the program's own
validation runs, nothing is simulated, and the result is drawn at random in exactly the shapes
the real program returns (a sampler's registers, an estimator's evs/stds, an executor item's
samplex outputs and registers, a noise learner's layer models). Its usage is an estimate of
QPU time, shots × (the circuit's scheduled duration + IBM's default 250 µs repetition delay),
not the time the draw took.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from emulator.simulation.params import (
    RunOutput,
    encode,
    new_seed,
    parse_params_json,
    sanitize,
)

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit
    from qiskit.transpiler import Target

    from emulator.domain.snapshots import BackendSnapshot

Answer = tuple[str, list[tuple["QuantumCircuit", int]]]
"""A result body, and the (circuit, executions) a QPU would run for it."""
REP_DELAY_S = 250e-6
"""IBM's default repetition delay between shots."""
NOTE = "dry run on a mock backend: randomized mock data, nothing simulated"


def _seconds(circuit: QuantumCircuit, target: Target) -> float:
    """The circuit's scheduled duration on the device (0 when its gates have no durations)."""
    try:
        return float(circuit.estimate_duration(target, unit="s"))
    except Exception:  # noqa: BLE001 - an operation without a calibrated duration
        return 0.0


def usage_estimate(runs: list[tuple[QuantumCircuit, int]], target: Target) -> float:
    """Estimated QPU seconds of (circuit, executions) pairs."""
    return sum(shots * (_seconds(c, target) + REP_DELAY_S) for c, shots in runs)


def _sampler(
    params: Any, snapshot: BackendSnapshot, rng: np.random.Generator, target: Target
) -> Answer:
    from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubResult

    from emulator.simulation.sampler import prepare_sampler

    job = prepare_sampler(params, snapshot)
    results, runs = [], []
    for pub in job.pubs:
        registers = {}
        for register in pub.circuit.cregs:
            bits = rng.integers(0, 2, size=(*pub.shape, pub.shots, register.size), dtype=bool)
            registers[register.name] = BitArray.from_bool_array(bits, order="little")
        metadata = {
            "shots": pub.shots,
            "circuit_metadata": sanitize(dict(pub.circuit.metadata or {})),
        }
        results.append(SamplerPubResult(DataBin(**registers, shape=pub.shape), metadata=metadata))
        runs.append((pub.circuit, pub.shots * max(1, math.prod(pub.shape))))
    return encode(PrimitiveResult(results, metadata={"dry_run": NOTE, "version": 2})), runs


def _estimator(
    params: Any, snapshot: BackendSnapshot, rng: np.random.Generator, target: Target
) -> Answer:
    from qiskit.primitives.containers import DataBin, PrimitiveResult, PubResult

    from emulator.simulation.estimator import prepare_estimator, pub_shots, value_limits

    job = prepare_estimator(params, snapshot)
    results, runs = [], []
    for pub in job.pubs:
        evs = rng.uniform(-1.0, 1.0, size=pub.shape) * value_limits(pub)
        stds = np.full(pub.shape, float(pub.precision))
        data = DataBin(evs=evs, stds=stds, ensemble_standard_error=stds.copy(), shape=pub.shape)
        shots = pub_shots(pub)
        metadata = {
            "target_precision": float(pub.precision),
            "shots": shots,
            "circuit_metadata": sanitize(dict(pub.circuit.metadata or {})),
        }
        results.append(PubResult(data, metadata=metadata))
        runs.append((pub.circuit, shots * max(1, pub.parameter_values.size)))
    metadata = {"dry_run": NOTE, **job.mitigation.metadata(), "version": 2}
    return encode(PrimitiveResult(results, metadata=metadata)), runs


def _executor(
    params: Any, snapshot: BackendSnapshot, rng: np.random.Generator, target: Target
) -> Answer:
    """The samplex outputs are drawn by the client's own `broadcast_sample` (as its local
    runner does); only the measured bits, which Aer would give, are random."""
    from ibm_quantum_schemas.common.tensor import CompressedTensorModel
    from ibm_quantum_schemas.executor.version_2_0.models import QuantumProgramResultModel
    from qiskit_ibm_runtime.fake_provider.executor.broadcast_sample import broadcast_sample

    from emulator.simulation.executor import prepare_executor

    job = prepare_executor(params, snapshot)
    program = job.program
    data, runs = [], []
    for item in program.items:
        outputs: dict[str, Any] = {}
        samplex = getattr(item, "samplex", None)
        if samplex is not None:
            samplex.finalize()
            outputs = broadcast_sample(samplex, item.samplex_arguments, item.shape, rng)
            outputs.pop("parameter_values", None)
        for register in item.circuit.cregs:
            size = (*item.shape, program.shots, register.size)
            outputs[register.name] = rng.integers(0, 2, size=size, dtype=bool)
        data.append(
            {
                "results": {
                    k: CompressedTensorModel.from_numpy(np.asarray(v)) for k, v in outputs.items()
                },
                "metadata": {},
            }
        )
        runs.append((item.circuit, program.shots * max(1, item.size())))
    model = QuantumProgramResultModel(
        data=data,
        metadata={"chunk_timing": []},
        passthrough_data=job.model.quantum_program.passthrough_data,
        semantic_role=job.model.quantum_program.semantic_role,
    )
    return model.model_dump_json(), runs


def _noise_learner(
    params: Any, snapshot: BackendSnapshot, rng: np.random.Generator, target: Target
) -> Answer:
    """The derived models (they cost no simulation), each rate scaled by a random factor in
    [0.5, 1.5): the schema and the generators hold, the numbers are mock data."""
    from emulator.simulation.noise_learner import run_noise_learner_body

    body, runs = run_noise_learner_body(
        params, snapshot, lambda rates: rates * rng.uniform(0.5, 1.5, rates.shape)
    )
    return body, runs


_PROGRAMS = {
    "sampler": _sampler,
    "estimator": _estimator,
    "executor": _executor,
    "noise-learner": _noise_learner,
    "noiselearner": _noise_learner,
}


def run_dry(program_id: str, params_json: str, snapshot: BackendSnapshot) -> RunOutput:
    """Validate as the program does, then answer with randomized data in its result shape."""
    from emulator.simulation.noise import backend_target

    params = parse_params_json(params_json)
    seed = new_seed()
    rng = np.random.default_rng(seed)
    target = backend_target(snapshot)
    body, runs = _PROGRAMS[program_id](params, snapshot, rng, target)
    seconds = usage_estimate(runs, target)
    log = [
        f"{program_id}: {NOTE} (seed {seed})",
        f"usage estimate: {seconds:.3f} s (shots x (scheduled duration + 250 us repetition delay))",
    ]
    json.loads(body)  # the body is always JSON; a defect here must not reach a client
    return RunOutput(result=body, log=log, quantum_seconds=seconds)
