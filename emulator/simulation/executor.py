"""The `executor` program (client-side primitives): the client's converters and local runner.

Decoding, samplex finalisation and execution use qiskit-ibm-runtime's own functions
(`QUANTUM_PROGRAM_PARAMS_CONVERTERS`, `run_quantum_program`); the emulator only chooses the
simulator (device noise on the qubits that matter) and builds the ibm-quantum-schemas result.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.circuit.library import RZGate
from qiskit_ibm_runtime.quantum_program.params_converters import QUANTUM_PROGRAM_PARAMS_CONVERTERS

from emulator.simulation.errors import REASON_INVALID_JOB, InvalidParams, ProgramFailure
from emulator.simulation.params import (
    RunOutput,
    Stopwatch,
    check_executions,
    check_width,
    count,
    describe_error,
    field_of,
    format_qubits,
    new_seed,
    parse_params_json,
    require_mapping,
)

if TYPE_CHECKING:
    from pydantic import ValidationError
    from qiskit_ibm_runtime.options_models import ExecutorOptions
    from qiskit_ibm_runtime.quantum_program import QuantumProgram

    from emulator.domain.snapshots import BackendSnapshot
    from emulator.simulation.methods import Policy

SCHEMA_VERSION = "v2.0"
"""The params/result schema of the installed client; results are always built in this one."""


@dataclass(frozen=True)
class ExecutorJob:
    """Decoded executor params."""

    program: QuantumProgram
    options: ExecutorOptions
    model: Any  # ibm_quantum_schemas.executor.version_2_0.ParamsModel


def _validation_failure(exc: ValidationError) -> InvalidParams:
    errors = exc.errors(include_url=False)
    if not errors:
        return InvalidParams("params", describe_error(exc))
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return InvalidParams(field_of("params", tuple(first.get("loc", ()))), f"{first['msg']}{more}")


def prepare_executor(params: Any, snapshot: BackendSnapshot) -> ExecutorJob:
    """Validate with the schema model and decode with the client's converter."""
    from pydantic import ValidationError

    params = require_mapping(params, "params")
    version = params.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidParams(
            "params.schema_version",
            f"unsupported schema version {version!r}; this emulator accepts {SCHEMA_VERSION!r}",
        )
    converter = QUANTUM_PROGRAM_PARAMS_CONVERTERS[SCHEMA_VERSION]
    try:
        model = converter.model(**params)
    except ValidationError as exc:
        raise _validation_failure(exc) from exc
    except Exception as exc:  # payload decoding inside validators (base64, zlib, QPY)
        raise InvalidParams("params", describe_error(exc)) from exc
    try:
        program, options = converter.decoder(model)
    except Exception as exc:  # the converter decodes QPY and samplex payloads
        raise InvalidParams("params.quantum_program", describe_error(exc)) from exc

    declared = len(model.quantum_program.items)
    if len(program.items) != declared:
        raise InvalidParams(
            "params.quantum_program.circuits",
            f"{len(program.items)} circuits decoded for {declared} items",
        )
    if model.quantum_program.meas_level != "classified":
        raise InvalidParams(
            "params.quantum_program.meas_level",
            f"only 'classified' is supported, got {model.quantum_program.meas_level!r}",
        )
    for index, item in enumerate(program.items):
        check_width(item.circuit, f"params.quantum_program.items[{index}]", snapshot)
    check_executions(
        program.shots * sum(item.size() for item in program.items),
        "params.quantum_program.shots",
    )
    return ExecutorJob(program=program, options=options, model=model)


def _passthrough_seed(passthrough: Any) -> int | None:
    """The client copies `options.simulator.seed_simulator` into the post-processor data."""
    try:
        seed = passthrough["post_processor"]["options"]["simulator"]["seed_simulator"]
    except (KeyError, TypeError):
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        return None
    return seed


def estimator_support(program: QuantumProgram) -> set[int] | None:
    """Qubits the estimator's observables act on, from the client's mitigation passthrough.

    Returns None when the passthrough cannot be read (then nothing is pruned).
    """
    from qiskit.primitives.containers.observables_array import ObservablesArray
    from qiskit_mitigation.utils.utils import load_tasks_from_result

    from emulator.simulation.estimator import observable_support

    try:
        holder = SimpleNamespace(passthrough_data=program.passthrough_data)
        tasks = load_tasks_from_result(holder, return_trex=True)  # type: ignore[arg-type]
        support: set[int] = set()
        for task in tasks:
            observables = getattr(task, "observables", None)
            if observables is not None:
                support |= observable_support(ObservablesArray.coerce(observables))
    except Exception:  # noqa: BLE001 - an unreadable passthrough only disables the pruning
        return None
    return support or None


def prune_circuit(circuit: QuantumCircuit, relevant: set[int]) -> QuantumCircuit | None:
    """Drop the instructions that cannot influence the bits measured on `relevant` qubits.

    Qubits and clbits are grouped by the instructions joining them (multi-qubit gates,
    measurements, control flow with its condition bits); groups containing no relevant qubit
    are removed. Their clbits stay 0, which the estimator post-processing never reads because
    the observables are the identity there. Parameters used only by removed gates are kept,
    as RZ gates on one removed qubit, so the parameter table (and the samplex's bindings) is
    unchanged. Returns None when nothing can be removed.
    """
    if circuit.num_vars or circuit.num_stretches:
        return None
    qubit_index = {bit: i for i, bit in enumerate(circuit.qubits)}
    clbit_index = {bit: circuit.num_qubits + i for i, bit in enumerate(circuit.clbits)}
    parent = list(range(circuit.num_qubits + circuit.num_clbits))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    used: set[int] = set()
    for instruction in circuit.data:
        if instruction.operation.name == "barrier":
            continue
        nodes = [qubit_index[q] for q in instruction.qubits]
        nodes += [clbit_index[c] for c in instruction.clbits]
        used.update(n for n in nodes if n < circuit.num_qubits)
        for node in nodes[1:]:
            parent[find(node)] = find(nodes[0])
    keep_roots = {find(q) for q in relevant if q < circuit.num_qubits}
    keep = {q for q in range(circuit.num_qubits) if find(q) in keep_roots}
    dropped = used - keep
    if not dropped:
        return None

    pruned = circuit.copy_empty_like()
    for instruction in circuit.data:
        if all(qubit_index[q] in keep for q in instruction.qubits):
            pruned.append(instruction)
    missing = [p for p in circuit.parameters if p not in pruned.parameters]
    scratch = circuit.qubits[min(dropped)]
    for parameter in missing:
        pruned.append(RZGate(parameter), [scratch])
    return pruned


def prune_for_estimator(program: QuantumProgram, log: list[str]) -> None:
    """Prune every item to what the estimator's observables read (see `prune_circuit`)."""
    support = estimator_support(program)
    if support is None:
        log.append("observables not found in passthrough data; simulating every measured qubit")
        return
    log.append(f"observables act on {format_qubits(support)}")
    for index, item in enumerate(program.items):
        pruned = prune_circuit(item.circuit, support)
        if pruned is not None:
            item.circuit = pruned
            log.append(f"item {index}: qubits unrelated to the observables left unsimulated")


def run_executor(
    params_json: str, snapshot: BackendSnapshot, policy: Policy | None = None
) -> RunOutput:
    """Run a quantum program the way the client's local mode does, with the snapshot's noise."""
    from ibm_quantum_schemas.common.tensor import CompressedTensorModel
    from ibm_quantum_schemas.executor.version_2_0.models import QuantumProgramResultModel
    from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import (
        run_quantum_program,
    )

    from emulator.simulation.aer import collected_warnings, simulate
    from emulator.simulation.methods import (
        Policy,
        Run,
        refuse_if_too_long,
        statevector_only,
    )
    from emulator.simulation.noise import active_qubits, make_simulator, noise_model_for

    log: list[str] = []
    with collected_warnings(log):
        job = prepare_executor(parse_params_json(params_json), snapshot)
        program = job.program
        role = job.model.quantum_program.semantic_role
        log.append(
            f"executor: {len(program.items)} item(s), {program.shots} shots, semantic role "
            f"{role!r}, on {snapshot.name} (snapshot {snapshot.source})"
        )
        for index, item in enumerate(program.items):
            if getattr(item, "samplex", None) is not None:
                try:
                    item.samplex.finalize()
                except Exception as exc:  # a samplex the client built but samplomatic rejects
                    raise ProgramFailure(
                        f"samplex of item {index} cannot be finalized: {describe_error(exc)}",
                        REASON_INVALID_JOB,
                        "Check that the client and server use compatible samplomatic versions.",
                    ) from exc
        if isinstance(role, str) and role.startswith("estimator"):
            prune_for_estimator(program, log)

        active: set[int] = set()
        for index, item in enumerate(program.items):
            qubits = active_qubits(item.circuit)
            active |= qubits
            log.append(
                f"item {index}: {type(item).__name__}, {item.circuit.num_qubits}-qubit circuit, "
                f"{count(len(qubits), 'qubit')} simulated, shape {item.shape}"
            )
        policy = policy or Policy()
        runs = [Run(item.circuit, program.shots, max(1, item.size())) for item in program.items]
        choice = statevector_only("executor", policy.method, runs)
        log.append(f"method: {choice.method} ({choice.reason})")
        log.append(
            f"noise: {snapshot.name} calibration (snapshot {snapshot.source}) on the "
            f"{format_qubits(active)} the circuits use"
        )
        noise_model = noise_model_for(snapshot, active)
        refuse_if_too_long(policy.max_job_seconds, choice, runs, noise_model, ideal=False)
        simulator = make_simulator(noise_model, choice.aer_method)

        seed = job.options.simulator.seed_simulator
        source = "options.simulator.seed_simulator"
        if seed is None:
            seed, source = _passthrough_seed(program.passthrough_data), "client simulator options"
        if seed is None:
            seed, source = new_seed(), "random"
        log.append(f"seed_simulator: {seed} ({source})")
        sim_options = job.options.simulator.model_copy(update={"seed_simulator": seed})

        with Stopwatch() as watch:
            result = simulate(lambda: run_quantum_program(simulator, program, sim_options))
        log.append(f"simulated in {watch.seconds:.3f} s")

        data = [
            {
                "results": {
                    name: CompressedTensorModel.from_numpy(np.asarray(value))
                    for name, value in item_result.items()
                },
                "metadata": {},
            }
            for item_result in result
        ]
        parts = [
            {
                "idx_item": index,
                "size": item.size(),
                "permutation": list(range(len(item.shape))),
                "element_range": (0, item.size(), 1),
            }
            for index, item in enumerate(program.items)
        ]
        model = QuantumProgramResultModel(
            data=data,
            metadata={"chunk_timing": [{"start": watch.start, "stop": watch.stop, "parts": parts}]},
            passthrough_data=job.model.quantum_program.passthrough_data,
            semantic_role=role,
        )
        body = model.model_dump_json()
    return RunOutput(result=body, log=log, quantum_seconds=watch.seconds)
