"""Clifford circuits of any width: stim's Pauli-frame sampler with the device noise twirled.

A noisy Clifford circuit with Pauli noise is what a Pauli-frame sampler computes exactly, in
time linear in the circuit and the shots (stim: a 127-qubit GHZ with 4,096 noisy shots in
well under a second). Aer's own `stabilizer` method re-simulates and re-measures the whole
tableau per shot once noise is present (a minute for the same job), so it stays for what
stim cannot take here: nothing, as long as the circuit is Clifford without control flow.

The device noise is the snapshot's, Pauli-twirled: per instruction, the depolarizing channel
Aer's device model derives from the calibrated gate error, composed with the twirl of each
qubit's thermal relaxation over the gate's duration. Twirling keeps a channel's process
fidelity, so every gate keeps its calibrated error rate exactly (within Aer's own rule: a gate
whose relaxation alone exceeds its error gets no depolarizing part). Readout errors are the
calibrated ones, applied to the sampled bits. What the twirl drops: coherent
parts, and relaxation's bias towards |0> (amplitude damping becomes symmetric X/Y flips).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import stim
from qiskit.circuit import ControlFlowOp, Delay, ParameterExpression
from qiskit.quantum_info import Operator

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit
    from qiskit.transpiler import Target

# Instructions that are not gates: measure and reset map to stim's; barriers do nothing.
_MEASURE, _RESET, _BARRIER, _DELAY = "measure", "reset", "barrier", "delay"
_DELAY_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12}
# Gates wider than this are not checked for being Clifford (their unitary is 4^k entries).
_MAX_GATE_QUBITS = 3

# Single-qubit sign table of the Pauli "transform": S1[a][b] = -1 when Paulis a, b (I, X, Y,
# Z) anticommute. p = S⊗k λ / 4^k turns a Pauli channel's eigenvalues λ into probabilities.
_S1 = np.array([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]], dtype=float)
_SIGNS = {1: _S1, 2: np.kron(_S1, _S1)}


def pauli_signs(k: int) -> np.ndarray:
    """±1 commutation signs of k-qubit Paulis (IXYZ per qubit, np.kron order): maps Pauli
    probabilities to Pauli fidelities and, divided by 4^k, back."""
    return _SIGNS[k]


class NotClifford(Exception):
    """The circuit is not one stim can take; the message names the first instruction why."""


def _angle_key(value: object) -> object:
    if isinstance(value, ParameterExpression):
        raise NotClifford("it has unbound parameters")
    if isinstance(value, float | int | np.floating):
        return round(float(value), 12)
    return value


@lru_cache(maxsize=512)
def _gate_program(operation_key: tuple[object, ...], matrix: bytes, width: int) -> stim.Circuit:
    """The gate as a stim circuit on qubits 0..width-1 (qiskit's little-endian order), or
    NotClifford. Derived from the gate's unitary (stim decomposes its tableau), so every
    Clifford gate qiskit knows is taken, with no table of gate identities to keep."""
    unitary = np.frombuffer(matrix, dtype=complex).reshape(2**width, 2**width)
    try:
        tableau = stim.Tableau.from_unitary_matrix(unitary, endian="little")
    except ValueError:
        raise NotClifford(f"{operation_key[0]} is not a Clifford gate") from None
    # stim fits the nearest tableau without checking that it is exact: compare the unitaries
    # (equal up to a global phase exactly when |Tr(U†V)| is the dimension).
    rebuilt = tableau.to_unitary_matrix(endian="little")
    if abs(abs(np.trace(unitary.conj().T @ rebuilt)) - 2**width) > 1e-6:
        raise NotClifford(f"{operation_key[0]} is not a Clifford gate")
    return tableau.to_circuit("elimination")


def gate_program(operation: object) -> stim.Circuit:
    name = getattr(operation, "name", "?")
    width = int(getattr(operation, "num_qubits", 0))
    if width > _MAX_GATE_QUBITS:
        raise NotClifford(f"{name} acts on {width} qubits")
    params = tuple(_angle_key(p) for p in getattr(operation, "params", ()))
    try:
        matrix = Operator(operation).data
    except Exception as exc:  # noqa: BLE001 - no matrix: not a gate stim can take
        raise NotClifford(f"{name} has no matrix") from exc
    return _gate_program((name, *params), np.ascontiguousarray(matrix).tobytes(), width)


def clifford_reason(circuit: QuantumCircuit) -> str | None:
    """None when every instruction can be sampled by stim; else why not (the first culprit)."""
    try:
        for instruction in circuit.data:
            operation = instruction.operation
            if isinstance(operation, ControlFlowOp):
                raise NotClifford(f"it has control flow ({operation.name})")
            if operation.name in (_MEASURE, _RESET, _BARRIER) or isinstance(operation, Delay):
                continue
            if getattr(operation, "condition", None) is not None:
                raise NotClifford(f"{operation.name} is classically conditioned")
            gate_program(operation)
    except NotClifford as exc:
        return str(exc)
    return None


# -- noise ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PauliNoise:
    """The Pauli-twirled device noise of the instructions a circuit uses."""

    target: Target

    def relaxation(self, qubit: int, seconds: float) -> tuple[float, float]:
        """(λx = λy, λz): the twirled thermal relaxation's Pauli eigenvalues over `seconds`."""
        props = self.target.qubit_properties
        t1 = getattr(props[qubit], "t1", None) if props and qubit < len(props) else None
        t2 = getattr(props[qubit], "t2", None) if props and qubit < len(props) else None
        if not seconds or not t1 or t1 <= 0:
            return 1.0, 1.0
        t2 = min(t2, 2 * t1) if t2 and t2 > 0 else 2 * t1  # Aer caps T2 at 2·T1 too
        return math.exp(-seconds / t2), math.exp(-seconds / t1)

    def probabilities(self, name: str, qubits: tuple[int, ...]) -> np.ndarray | None:
        """The instruction's Pauli error probabilities (I first, stim's order), or None."""
        return _channel(self, name, qubits)

    def relaxation_only(self, name: str, qubits: tuple[int, ...]) -> np.ndarray:
        """The instruction's twirled relaxation alone, without its depolarizing part."""
        found = _compute_channel(self, name, qubits, gate_error=False)
        return found if found is not None else np.eye(1, 4 ** len(qubits))[0]

    def readout(self, qubit: int) -> tuple[float, float]:
        """(P(1|0), P(0|1)): the measurement's calibrated error, as Aer's device model reads
        it from a Target (symmetric; the sampling takes asymmetric pairs too)."""
        props = _props(self.target, _MEASURE, (qubit,))
        error = float(getattr(props, "error", None) or 0.0) if props is not None else 0.0
        return error, error

    def idle(self, qubit: int, seconds: float) -> np.ndarray | None:
        """Twirled relaxation of an idle qubit (a delay) as Pauli probabilities."""
        transverse, longitudinal = self.relaxation(qubit, seconds)
        if transverse == longitudinal == 1.0:
            return None
        eigen = np.array([1.0, transverse, transverse, longitudinal])
        return np.clip(_S1 @ eigen / 4, 0.0, 1.0)


def _props(target: Target, name: str, qubits: tuple[int, ...]) -> object | None:
    if name not in target.operation_names:
        return None
    table = target[name]
    return table.get(qubits) if table else None


_channel_lock = threading.Lock()
_channels: dict[tuple[int, str, tuple[int, ...]], np.ndarray | None] = {}


def _channel(noise: PauliNoise, name: str, qubits: tuple[int, ...]) -> np.ndarray | None:
    key = (id(noise.target), name, qubits)
    with _channel_lock:
        if key in _channels:
            return _channels[key]
    found = _compute_channel(noise, name, qubits)
    with _channel_lock:
        if len(_channels) > 100_000:
            _channels.clear()
        _channels[key] = found
    return found


def _compute_channel(
    noise: PauliNoise, name: str, qubits: tuple[int, ...], gate_error: bool = True
) -> np.ndarray | None:
    k = len(qubits)
    props = _props(noise.target, name, qubits)
    if props is None or k not in _SIGNS:
        return None
    error = float(getattr(props, "error", None) or 0.0) if gate_error else 0.0
    seconds = float(getattr(props, "duration", None) or 0.0)
    dim, paulis = 2**k, 4**k
    # Relaxation eigenvalues per Pauli: the tensor product of each qubit's (1, λx, λy, λz).
    relax = np.ones(1)
    for q in qubits:
        transverse, longitudinal = noise.relaxation(q, seconds)
        relax = np.kron(relax, [1.0, transverse, transverse, longitudinal])
    if error <= 0 and np.all(relax == 1.0):
        return None
    # Depolarizing eigenvalue f so that the composition's process fidelity matches the
    # calibrated average gate infidelity `error` (Aer's rule; clipped to a valid channel).
    process_fidelity = 1 - error * (dim + 1) / dim
    relax_sum = float(relax.sum())  # = paulis · (relaxation's process fidelity)
    f = 1.0
    if gate_error and relax_sum - 1 > 0:
        f = (paulis * process_fidelity - 1) / (relax_sum - 1)
    f = min(1.0, max(-1.0 / (paulis - 1), f))
    eigen = relax * f
    eigen[0] = 1.0
    return np.clip(_SIGNS[k] @ eigen / paulis, 0.0, 1.0)


# -- conversion and sampling ------------------------------------------------------------------


@dataclass
class StimProgram:
    circuit: stim.Circuit
    record: list[int]  # measurement record index -> clbit index
    readout: list[tuple[float, float]]  # per measurement record: (P(1|0), P(0|1))
    num_clbits: int


def _seconds(operation: Delay, dt: float | None) -> float:
    unit = getattr(operation, "unit", "dt")
    duration = float(operation.params[0]) if operation.params else 0.0
    if unit == "dt":
        return duration * (dt or 0.0)
    return duration * _DELAY_UNITS.get(unit, 0.0)


def to_stim(circuit: QuantumCircuit, noise: PauliNoise | None) -> StimProgram:
    """The circuit as a stim program (raises NotClifford), its noise inserted after each
    instruction; readout errors are kept aside for the sampled bits."""
    out = stim.Circuit()
    index = {bit: i for i, bit in enumerate(circuit.qubits)}
    clbits = {bit: i for i, bit in enumerate(circuit.clbits)}
    record: list[int] = []
    readout: list[tuple[float, float]] = []
    dt = noise.target.dt if noise is not None else None
    for instruction in circuit.data:
        operation = instruction.operation
        qubits = tuple(index[q] for q in instruction.qubits)
        name = operation.name
        if name == _BARRIER:
            continue
        if isinstance(operation, ControlFlowOp):
            raise NotClifford(f"it has control flow ({name})")
        if name == _MEASURE:
            out.append("M", list(qubits))
            for q, c in zip(qubits, instruction.clbits, strict=True):
                record.append(clbits[c])
                readout.append(noise.readout(q) if noise is not None else (0.0, 0.0))
            continue
        if name == _RESET:
            out.append("R", list(qubits))
            continue
        if isinstance(operation, Delay):
            if noise is not None:
                seconds = _seconds(operation, dt)
                for q in qubits:
                    probabilities = noise.idle(q, seconds)
                    if probabilities is not None:
                        out.append("PAULI_CHANNEL_1", [q], list(probabilities[1:]))
            continue
        program = gate_program(operation)
        for step in program:
            targets = [qubits[t.value] for t in step.targets_copy()]
            out.append(step.name, targets, step.gate_args_copy())
        if noise is not None:
            probabilities = noise.probabilities(name, qubits)
            if probabilities is not None:
                channel = "PAULI_CHANNEL_1" if len(qubits) == 1 else "PAULI_CHANNEL_2"
                out.append(channel, list(qubits), list(probabilities[1:]))
    return StimProgram(out, record, readout, len(circuit.clbits))


def sample(program: StimProgram, shots: int, seed: int) -> np.ndarray:
    """(shots, num_clbits) bools: each clbit the last measurement written to it, readout
    errors applied."""
    rng = np.random.default_rng(seed)
    measured = program.circuit.compile_sampler(seed=int(rng.integers(2**63))).sample(shots)
    if program.readout and any(p != (0.0, 0.0) for p in program.readout):
        flip_up = np.array([p[0] for p in program.readout])
        flip_down = np.array([p[1] for p in program.readout])
        draws = rng.random(measured.shape)
        measured = np.where(measured, draws >= flip_down, draws < flip_up)
    bits = np.zeros((shots, program.num_clbits), dtype=bool)
    for position, clbit in enumerate(program.record):
        bits[:, clbit] = measured[:, position]
    return bits


_PAULI_TARGETS = {1: stim.target_z, 2: stim.target_x, 3: stim.target_y}  # SparseObservable bits


def pauli_expectation(
    program: StimProgram, term: tuple[tuple[int, int], ...], shots: int, seed: int
) -> float:
    """⟨P⟩ after the program, from `shots` samples of one MPP measurement of the Pauli product
    `term` ((qubit, SparseObservable bit term) pairs). Like Aer's estimator, with the gate
    noise and without readout error."""
    if not term:
        return 1.0
    measured = program.circuit.copy()
    targets: list[object] = []
    for qubit, bit in term:
        if targets:
            targets.append(stim.target_combiner())
        targets.append(_PAULI_TARGETS[bit](qubit))
    measured.append("MPP", targets)
    flips = measured.compile_sampler(seed=seed).sample(shots)[:, -1]
    return 1.0 - 2.0 * float(np.mean(flips))
