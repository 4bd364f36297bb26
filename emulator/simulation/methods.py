"""Which simulation method runs a job, and why (the job log and the result metadata say).

`auto`: circuits on at most AUTO_STATEVECTOR_QUBITS simulated qubits run on Aer's statevector
(exact and cheap there, and seeded results stay what they always were); wider circuits that
are Clifford (every gate, after binding, a Clifford unitary; no control flow) run on the
stabilizer path (`stabilizer.py`) at any width; anything else stays on the statevector.
A forced method that cannot take the job fails it with the reason, never silently switches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator.domain.methods import AUTO, STABILIZER, STATEVECTOR
from emulator.simulation.errors import REASON_INVALID_JOB, ProgramFailure

if TYPE_CHECKING:
    from collections.abc import Iterable

    from qiskit.circuit import QuantumCircuit
    from qiskit_aer.noise import NoiseModel

AUTO_STATEVECTOR_QUBITS = 12


@dataclass(frozen=True)
class Choice:
    method: str
    reason: str

    def metadata(self, noise: str) -> dict[str, str]:
        """What the result metadata says (`metadata.simulator`)."""
        return {"method": self.method, "reason": self.reason, "noise": noise}


def _not_clifford(circuits: Iterable[QuantumCircuit]) -> str | None:
    from emulator.simulation.stabilizer import clifford_reason

    for circuit in circuits:
        reason = clifford_reason(circuit)
        if reason is not None:
            return reason
    return None


def choose_method(
    setting: str,
    circuits: Iterable[QuantumCircuit],
    simulated_qubits: int,
    user_noise: NoiseModel | None,
) -> Choice:
    """The method for a job's (bound) circuits under `--simulation-method` `setting`."""
    if setting == STATEVECTOR:
        return Choice(STATEVECTOR, "--simulation-method statevector")
    custom_noise = user_noise is not None and not user_noise.is_ideal()
    if setting == STABILIZER:
        reason = _not_clifford(circuits)
        if reason is None and custom_noise:
            reason = (
                "options.simulator.noise_model is a custom model (only device noise is twirled)"
            )
        if reason is not None:
            raise ProgramFailure(
                f"The stabilizer method (--simulation-method stabilizer) cannot run this job: "
                f"{reason}.",
                REASON_INVALID_JOB,
                "Submit Clifford circuits (gates such as h, s, sx, x, cx, ecr, cz and rz at "
                "multiples of pi/2, no control flow), or use --simulation-method auto.",
            )
        return Choice(STABILIZER, "--simulation-method stabilizer")
    if setting != AUTO:
        raise ValueError(f"unknown simulation method {setting!r}")
    if simulated_qubits <= AUTO_STATEVECTOR_QUBITS:
        return Choice(
            STATEVECTOR,
            f"auto: {simulated_qubits} simulated qubits (statevector up to "
            f"{AUTO_STATEVECTOR_QUBITS})",
        )
    if custom_noise:
        return Choice(STATEVECTOR, "auto: a custom options.simulator.noise_model is kept exact")
    reason = _not_clifford(circuits)
    if reason is not None:
        return Choice(STATEVECTOR, f"auto: not a Clifford circuit ({reason})")
    return Choice(STABILIZER, f"auto: Clifford circuits on {simulated_qubits} qubits")


def statevector_only(program: str, setting: str) -> str:
    """The method line of a program that has only the statevector path (so far)."""
    if setting == STABILIZER:
        return (
            f"method: statevector (--simulation-method stabilizer serves sampler jobs; the "
            f"{program} runs on the statevector)"
        )
    return f"method: statevector ({program} jobs run on the statevector)"
