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


def memory_failure_circuit(target: Target, width: int = 40) -> QuantumCircuit:
    """An ISA circuit that passes validation but that Aer refuses at once: 'Insufficient memory'.

    `sx` then `rz(pi/4)` on `width` qubits, each measured: nothing entangles, but the state
    (and the device noise) is non-Clifford, so Aer needs a 2**width statevector (16 TiB for
    40 qubits) and fails before simulating. Uses only gates the backend supports on every
    operational qubit, at full device width, as the client sends it.
    """
    qubits = [
        q
        for q in range(target.num_qubits)
        if (q,) in target["sx"] and (q,) in target["rz"] and (q,) in target["measure"]
    ][:width]
    circuit = QuantumCircuit(target.num_qubits, len(qubits))
    for q in qubits:
        circuit.sx(q)
        circuit.rz(math.pi / 4, q)
    for index, q in enumerate(qubits):
        circuit.measure(q, index)
    return circuit
