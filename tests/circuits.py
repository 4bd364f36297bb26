"""Circuits the integration tests need: cheap in memory, with known run-time behaviour."""

from __future__ import annotations

import math

from qiskit import QuantumCircuit
from qiskit.transpiler import Target


def bell(measure: bool = True) -> QuantumCircuit:
    """The 2-qubit Bell pair, measured unless `measure` is false (for the Estimator)."""
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    if measure:
        qc.measure_all()
    return qc


def noisy_bell(pairs: int = 4) -> QuantumCircuit:
    """A Bell pair then `pairs` identity CX pairs (barriers keep the transpiler from
    cancelling them): 2 + 2·pairs noisy two-qubit gates, so gate and readout errors pull ⟨ZZ⟩
    well below its ideal 1 (error mitigation tests and bench)."""
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    for _ in range(pairs):
        qc.barrier()
        qc.cx(0, 1)
        qc.barrier()
        qc.cx(0, 1)
    return qc


def ghz(width: int, measure: bool = True) -> QuantumCircuit:
    """A GHZ state by a CX chain (Clifford: the stabilizer path at any width)."""
    qc = QuantumCircuit(width)
    qc.h(0)
    for q in range(width - 1):
        qc.cx(q, q + 1)
    if measure:
        qc.measure_all()
    return qc


def isa(backend: object, circuit: QuantumCircuit) -> QuantumCircuit:
    """`circuit` transpiled for `backend` as users do, with a fixed transpiler seed."""
    from qiskit.transpiler import generate_preset_pass_manager

    pm = generate_preset_pass_manager(backend=backend, optimization_level=1, seed_transpiler=1)
    return pm.run(circuit)


def long_running_circuit(width: int = 18, layers: int = 3) -> QuantumCircuit:
    """Noisy trajectories of an entangled 18-qubit circuit: minutes of CPU for 1000 shots, 4 MB.

    Used where a job must still be running when the test acts on it (cancel, time limit,
    restart); the tests never wait for it to finish.
    """
    qc = QuantumCircuit(width)
    for layer in range(layers):
        for q in range(width):
            qc.ry(0.3 + 0.1 * q + layer, q)
        for q in range(width - 1):
            qc.cx(q, q + 1)
    qc.measure_all()
    return qc


def trotter_circuit(width: int, steps: int = 2, measure: bool = True) -> QuantumCircuit:
    """Shallow Trotter steps of a transverse-field Ising chain (rx, then rzz on even and odd
    bonds): non-Clifford, wide, entangling only along the chain (the MPS case)."""
    qc = QuantumCircuit(width)
    for _ in range(steps):
        for q in range(width):
            qc.rx(0.3, q)
        for start in (0, 1):
            for q in range(start, width - 1, 2):
                qc.rzz(0.2, q, q + 1)
    if measure:
        qc.measure_all()
    return qc


def dense_circuit(width: int, layers: int = 2) -> QuantumCircuit:
    """A non-Clifford circuit entangled across every cut (a chain plus links half its width
    apart): no method but the statevector takes it (its bond dimension bound is far beyond
    the MPS cap), so wide it is refused before it runs."""
    qc = QuantumCircuit(width)
    for layer in range(layers):
        for q in range(width):
            qc.ry(0.2 + 0.05 * q + layer, q)
        for q in range(width - 1):
            qc.cx(q, q + 1)
        for q in range(width // 2):
            qc.cx(q, q + width // 2)
    qc.measure_all()
    return qc


def memory_failure_circuit(target: Target, width: int = 40) -> QuantumCircuit:
    """An ISA circuit that passes validation but that Aer refuses at once: 'Insufficient memory'.

    `sx` then `rz(pi/4)` on `width` qubits, then layers of `ecr` on every coupled pair among
    them and `rz(pi/4)` again, each qubit measured: non-Clifford and entangled across every
    cut beyond the MPS cap, so only a 2**width statevector (16 TiB for 40 qubits) could take
    it, and Aer fails before simulating. Uses only gates the backend supports on every
    operational qubit, at full device width, as the client sends it.
    """
    qubits = [
        q
        for q in range(target.num_qubits)
        if (q,) in target["sx"] and (q,) in target["rz"] and (q,) in target["measure"]
    ][:width]
    chosen = set(qubits)
    pairs = [pair for pair in target["ecr"] if pair is not None and set(pair) <= chosen]
    circuit = QuantumCircuit(target.num_qubits, len(qubits))
    for q in qubits:
        circuit.sx(q)
        circuit.rz(math.pi / 4, q)
    for _ in range(12):
        for a, b in pairs:
            circuit.ecr(a, b)
        for q in qubits:
            circuit.rz(math.pi / 4, q)
    for index, q in enumerate(qubits):
        circuit.measure(q, index)
    return circuit
