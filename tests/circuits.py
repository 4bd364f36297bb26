"""Circuits the integration tests need: cheap in memory, with known run-time behaviour."""

from __future__ import annotations

from qiskit import QuantumCircuit


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
