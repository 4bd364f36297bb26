"""Device noise for simulations, derived from the same documents the client reads.

The Target is built with the client's own decoders and converter, so the emulator and the
client agree on every instruction, qubit and error rate. Building Aer's `NoiseModel` for a whole
127/156-qubit device costs seconds and makes every simulation slow, so models are built only for
the qubits a job touches, from a copy of the Target that holds nothing else. For instructions
inside that set the result is identical to the full model (see tests/unit/test_noise.py).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from qiskit.circuit import ControlFlowOp, QuantumCircuit
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_ibm_runtime.utils.backend_converter import convert_to_target
from qiskit_ibm_runtime.utils.backend_decoder import (
    configuration_from_server_data,
    properties_from_server_data,
)

if TYPE_CHECKING:
    from emulator.domain.snapshots import BackendSnapshot

NOISE_CACHE_SIZE = 64
"""Reduced models kept per process; each holds the errors of a handful of qubits only."""

_NON_OPERATIONS = frozenset({"barrier"})

_lock = threading.Lock()
_targets: dict[tuple[str, str], Target] = {}
_noise_models: OrderedDict[tuple[str, str, frozenset[int], bool], NoiseModel] = OrderedDict()


class _TargetBackend(BackendV2):
    """The least `NoiseModel.from_backend` needs: a BackendV2 exposing a Target."""

    def __init__(self, target: Target, name: str) -> None:
        super().__init__(name=name)
        self._target = target

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options()

    def run(self, run_input: Any, **options: Any) -> Any:
        raise NotImplementedError("only used to derive noise models")


def build_target(snapshot: BackendSnapshot) -> Target:
    """Convert a snapshot's configuration/properties exactly as the client does (uncached)."""
    # The client's decoders mutate their input. `use_fractional_gates=None` keeps every gate,
    # so circuits prepared with or without fractional gates both find their errors.
    configuration = configuration_from_server_data(
        copy.deepcopy(snapshot.configuration), use_fractional_gates=None
    )
    if configuration is None:
        raise ValueError(f"snapshot {snapshot.source!r} has a configuration the client rejects")
    properties = properties_from_server_data(
        copy.deepcopy(snapshot.properties), use_fractional_gates=None
    )
    return convert_to_target(configuration=configuration, properties=properties)


def backend_target(snapshot: BackendSnapshot) -> Target:
    """The snapshot's Target, built once per process. Treat it as read-only."""
    key = (snapshot.name, snapshot.source)
    with _lock:
        target = _targets.get(key)
    if target is None:
        target = build_target(snapshot)
        with _lock:
            target = _targets.setdefault(key, target)
    return target


def restricted_target(target: Target, qubits: Iterable[int]) -> Target:
    """A Target with only the instruction properties whose qubits all lie in `qubits`.

    Global instructions (control flow) are kept; qubit properties (T1/T2, needed for delays)
    are kept for every qubit since they cost nothing to carry.
    """
    keep = frozenset(qubits)
    reduced = Target(
        description=target.description,
        num_qubits=target.num_qubits,
        dt=target.dt,
        granularity=target.granularity,
        min_length=target.min_length,
        pulse_alignment=target.pulse_alignment,
        acquire_alignment=target.acquire_alignment,
        qubit_properties=target.qubit_properties,
        concurrent_measurements=target.concurrent_measurements,
    )
    for name in target.operation_names:
        operation = target.operation_from_name(name)
        properties = target[name]
        if properties is None or None in properties:
            reduced.add_instruction(operation, name=name)
            continue
        subset = {qargs: props for qargs, props in properties.items() if keep.issuperset(qargs)}
        reduced.add_instruction(operation, subset, name=name)
    return reduced


def noise_model_from_target(
    target: Target, name: str = "emulated", readout: bool = True
) -> NoiseModel:
    """Aer's device noise model (gate, readout and relaxation errors) for a Target; without
    readout errors when `readout` is false (kerneled measurements draw them as IQ spread)."""
    return NoiseModel.from_backend(_TargetBackend(target, name), readout_error=readout)


def noise_model_for(
    snapshot: BackendSnapshot, qubits: Iterable[int], readout: bool = True
) -> NoiseModel:
    """The snapshot's noise restricted to `qubits`, cached (LRU). Do not mutate the result."""
    active = frozenset(int(q) for q in qubits)
    key = (snapshot.name, snapshot.source, active, readout)
    with _lock:
        model = _noise_models.get(key)
        if model is not None:
            _noise_models.move_to_end(key)
            return model
    model = noise_model_from_target(
        restricted_target(backend_target(snapshot), active), key[0], readout
    )
    with _lock:
        _noise_models[key] = model
        _noise_models.move_to_end(key)
        while len(_noise_models) > NOISE_CACHE_SIZE:
            _noise_models.popitem(last=False)
    return model


def clear_caches() -> None:
    """Forget every cached Target and noise model (tests, snapshot reloads)."""
    with _lock:
        _targets.clear()
        _noise_models.clear()


def active_qubits(circuit: QuantumCircuit) -> set[int]:
    """Indices of the qubits any instruction acts on, looking inside control flow and boxes.

    Barriers are ignored (no noise, no effect); delays count because they carry relaxation.
    """
    active: set[int] = set()
    _collect_active(circuit, list(range(circuit.num_qubits)), active)
    return active


def _collect_active(circuit: QuantumCircuit, physical: list[int], active: set[int]) -> None:
    index = {bit: physical[i] for i, bit in enumerate(circuit.qubits)}
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name in _NON_OPERATIONS:
            continue
        qubits = [index[q] for q in instruction.qubits]
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                _collect_active(block, qubits, active)
        else:
            active.update(qubits)


# The worker memory limit in MiB (set once per worker process by the runner); 0: Aer's default.
_max_memory_mb = 0


def limit_simulator_memory(mb: int) -> None:
    """Have every simulator of this process refuse circuits needing more than `mb` MiB."""
    global _max_memory_mb
    _max_memory_mb = mb


# Where statevector simulations run (set once per worker process from --device).
_device = "CPU"


def use_device(device: str) -> None:
    """Run this process's statevector simulations on `device` ("CPU" or "GPU")."""
    global _device
    _device = device


def gpu_available() -> bool:
    """Whether Aer here can simulate on a GPU (qiskit-aer-gpu installed, a GPU visible)."""
    try:
        return "GPU" in AerSimulator().available_devices()
    except Exception:  # noqa: BLE001 - a broken GPU build: no GPU
        return False


def fits_in_memory(qubits: int) -> bool:
    """Whether a statevector of `qubits` fits the worker memory limit (16 bytes an amplitude;
    without a limit, the machine's memory decides: assume it fits)."""
    return not _max_memory_mb or (16 << qubits) <= (_max_memory_mb << 20)


def make_simulator(noise_model: NoiseModel | None, method: str = "automatic") -> AerSimulator:
    """An AerSimulator limited to one thread (the worker pool runs one process per core) and
    to the worker memory limit (Aer then refuses a too-large state before allocating it)."""
    options: dict[str, object] = {"max_memory_mb": _max_memory_mb} if _max_memory_mb else {}
    if _device != "CPU":
        options["device"] = _device
    return AerSimulator(noise_model=noise_model, method=method, max_parallel_threads=1, **options)
