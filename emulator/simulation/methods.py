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
# Seconds per (trajectory x operation x amplitude) of Aer's single-threaded statevector. With
# device noise every shot is its own trajectory; measured 5-11 ns on 2 idle cores (10-18
# qubits), so these lower figures only refuse what is far out of reach, never a job that
# would have finished in time on a fast machine.
NOISY_SECONDS_PER_AMPLITUDE_OP = 2e-9
IDEAL_SECONDS_PER_AMPLITUDE_OP = 5e-10


@dataclass(frozen=True)
class Policy:
    """What the server allows a job: its backend's `--simulation-method`, and
    `--max-job-seconds` (0: no limit) for the estimate made before it runs."""

    method: str = AUTO
    max_job_seconds: int = 0


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


def statevector_seconds(operations: int, qubits: int, shots: int, noisy: bool) -> float:
    """A low estimate of a statevector simulation's seconds (see the constants above)."""
    if noisy:
        return shots * operations * 2.0**qubits * NOISY_SECONDS_PER_AMPLITUDE_OP
    return operations * 2.0**qubits * IDEAL_SECONDS_PER_AMPLITUDE_OP


AER_DEFAULT_SHOTS = 1024
"""Trajectories Aer's EstimatorV2 averages per parameter set (it sets no shots of its own)."""


def statevector_cost(
    runs: Iterable[tuple[QuantumCircuit, int]], noise_model: NoiseModel
) -> tuple[float, str]:
    """A low estimate of the seconds of (circuit, shots) statevector runs, and the figures of
    the widest; (0, …) when one would not fit the worker memory: Aer refuses it at once
    itself, naming the memory limit, which is the better reason."""
    from emulator.simulation.noise import active_qubits, fits_in_memory

    noisy = not noise_model.is_ideal()
    total, widest = 0.0, (0, 0, 0)
    for circuit, shots in runs:
        qubits = len(active_qubits(circuit))
        if not fits_in_memory(qubits):
            return 0.0, f"statevector of {qubits} qubits"
        operations = sum(1 for i in circuit.data if i.operation.name not in ("barrier", "measure"))
        total += statevector_seconds(operations, qubits, shots, noisy)
        widest = max(widest, (qubits, operations, shots))
    qubits, operations, shots = widest
    how = "with device noise, each shot its own trajectory" if noisy else "noiseless"
    return total, f"statevector of {qubits} qubits, {operations} operations, {shots} shots {how}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} hours"
    if seconds < 2 * 86400 * 365:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / 86400 / 365:.2g} years"


def refuse_beyond(limit_seconds: int, estimate: float, what: str) -> None:
    """Fail the job before it runs when it cannot finish within `--max-job-seconds`."""
    if limit_seconds <= 0 or estimate <= limit_seconds:
        return
    raise ProgramFailure(
        f"The job would take at least {_duration(estimate)} to simulate ({what}); this "
        f"emulator stops at --max-job-seconds {limit_seconds}.",
        REASON_INVALID_JOB,
        "Use fewer qubits (each one doubles the statevector) or fewer shots, Clifford-only "
        "circuits (the stabilizer method runs them at any width), or an ideal noise model "
        "(options.simulator.noise_model = NoiseModel(): one trajectory for every shot); or "
        "start the emulator with a larger --max-job-seconds.",
    )
