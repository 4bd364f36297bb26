"""`execution.meas_type` `kerneled` and `avg_kerneled`: IQ points from the readout error model.

A QPU's kerneled measurement is one complex IQ point per shot and bit, scattered around a
centre for |0> and one for |1>; classifying it by the nearer centre is what produces the
readout error. The emulator simulates without readout error, then draws each point around
the centre of the state's bit with a Gaussian spread chosen so that the nearer-centre rule
misreads it with exactly the qubit's calibrated readout error p: centres at +1 and -1 (|0>,
|1>, arbitrary units as IBM's), σ = 1 / Φ⁻¹(1 - p) on each of I and Q.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit
    from qiskit.primitives.containers import BitArray

MEAS_TYPES = ("classified", "kerneled", "avg_kerneled")
IDEAL_SPREAD = 0.05
"""σ where the bits already carry every readout error (a custom noise model) or none exists."""


def measured_qubits(circuit: QuantumCircuit) -> dict[object, int]:
    """Each clbit's qubit: the last measurement into it."""
    index = {bit: i for i, bit in enumerate(circuit.qubits)}
    found: dict[object, int] = {}
    for instruction in circuit.data:
        if instruction.operation.name == "measure":
            found[instruction.clbits[0]] = index[instruction.qubits[0]]
    return found


def spread(error: float) -> float:
    """σ for which N(+1, σ) falls below 0 with probability `error`."""
    from scipy.stats import norm

    if not 0 < error < 0.5:
        return IDEAL_SPREAD
    return float(1 / norm.ppf(1 - error))


def iq_points(
    bits: BitArray,
    clbits: list[object],
    circuit: QuantumCircuit,
    readout_error: dict[int, float],
    rng: np.random.Generator,
    average: bool,
) -> np.ndarray:
    """Complex IQ data of one register: (*shape, shots, bits), or (*shape, bits) averaged."""
    states = bits.to_bool_array(order="little")  # [..., shot, bit i of the register]
    qubit_of = measured_qubits(circuit)
    sigmas = np.array(
        [
            spread(readout_error.get(qubit_of[c], 0.0)) if c in qubit_of else IDEAL_SPREAD
            for c in clbits
        ]
    )
    centres = np.where(states, -1.0, 1.0)
    noise = rng.normal(size=(*states.shape, 2)) * sigmas[:, None]
    points = centres + noise[..., 0] + 1j * noise[..., 1]
    return points.mean(axis=-2) if average else points
