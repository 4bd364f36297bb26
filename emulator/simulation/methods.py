"""Which simulation method runs a job, and why (the job log and the result metadata say).

`auto`: circuits on at most AUTO_STATEVECTOR_QUBITS simulated qubits run on Aer's statevector,
or on its density matrix where Aer's own automatic rule would take it (noisy, more shots
than 2^n): exact and cheap there, and seeded results stay what they always were. Wider
circuits that are Clifford (every gate, after binding, a Clifford unitary; no control flow)
run on the stabilizer path (`stabilizer.py`) at any width; wider non-Clifford circuits whose
bond dimension stays bounded along a chain order of their qubits run as matrix product
states (`mps.py`) when that is cheaper than the statevector (or the statevector would not
fit); anything else stays on the statevector. A forced method that cannot take the job
fails it with the reason, never silently switches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator.domain.methods import (
    AUTO,
    DENSITY_MATRIX,
    MATRIX_PRODUCT_STATE,
    STABILIZER,
    STATEVECTOR,
)
from emulator.simulation.errors import REASON_INVALID_JOB, ProgramFailure

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from qiskit.circuit import QuantumCircuit
    from qiskit_aer.noise import NoiseModel

AUTO_STATEVECTOR_QUBITS = 12
# Seconds per (trajectory x operation x amplitude) of Aer's single-threaded statevector. With
# device noise every shot is its own trajectory; measured 5-11 ns on 2 idle cores (10-18
# qubits), so these lower figures only refuse what is far out of reach, never a job that
# would have finished in time on a fast machine.
NOISY_SECONDS_PER_AMPLITUDE_OP = 2e-9
IDEAL_SECONDS_PER_AMPLITUDE_OP = 5e-10
STATEVECTOR_MAX_QUBITS = 32
"""64 GiB of statevector: beyond it `auto` does not count on the statevector, limit or not."""
# Per operation x density matrix entry (4^n), noisy: measured 5-14e-9 (8-12 qubits).
DENSITY_SECONDS_PER_ENTRY_OP = 2e-9


@dataclass(frozen=True)
class Policy:
    """What the server allows a job: its backend's `--simulation-method`, and
    `--max-job-seconds` (0: no limit) for the estimate made before it runs."""

    method: str = AUTO
    max_job_seconds: int = 0
    dry_run: bool = False
    """A `mock_*` backend's job: validated, then answered with randomized data."""


@dataclass(frozen=True)
class Run:
    """One pub's circuit as Aer runs it: `experiments` parameter sets of `shots` each."""

    circuit: QuantumCircuit
    shots: int
    experiments: int = 1


@dataclass(frozen=True)
class Choice:
    method: str
    reason: str
    aer_method: str = "automatic"
    """What AerSimulator is given (statevector-family methods; Aer's own choice if mixed)."""

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


def _refuse_forced(method: str, reason: str, solution: str) -> ProgramFailure:
    return ProgramFailure(
        f"The {method.replace('_', ' ')} method (--simulation-method {method}) cannot run this "
        f"job: {reason}.",
        REASON_INVALID_JOB,
        solution,
    )


def choose_method(
    setting: str,
    circuits: Iterable[QuantumCircuit],
    simulated_qubits: int,
    user_noise: NoiseModel | None,
    runs: Sequence[Run] = (),
    program: str = "sampler",
    max_job_seconds: int = 0,
) -> Choice:
    """The method for a job's (bound) circuits under `--simulation-method` `setting`.

    `runs` (each pub's circuit, shots and parameter sets) lets `auto` weigh costs: the
    density matrix for small noisy jobs with more shots than amplitudes (Aer's rule), the
    matrix product state for wide non-Clifford circuits beyond the statevector's reach whose
    bond dimension stays bounded."""
    custom_noise = user_noise is not None and not user_noise.is_ideal()
    noisy = user_noise is None or custom_noise
    if setting in (STATEVECTOR, DENSITY_MATRIX):
        return Choice(setting, f"--simulation-method {setting}", aer_method=setting)
    if setting == STABILIZER:
        reason = _not_clifford(circuits)
        if reason is None and custom_noise:
            reason = (
                "options.simulator.noise_model is a custom model (only device noise is twirled)"
            )
        if reason is not None:
            raise _refuse_forced(
                STABILIZER,
                reason,
                "Submit Clifford circuits (gates such as h, s, sx, x, cx, ecr, cz and rz at "
                "multiples of pi/2, no control flow), or use --simulation-method auto.",
            )
        return Choice(STABILIZER, "--simulation-method stabilizer")
    if setting == MATRIX_PRODUCT_STATE:
        from emulator.simulation.mps import mps_reason

        reason = next(filter(None, (mps_reason(run.circuit) for run in runs)), None)
        if program not in ("sampler", "estimator"):
            reason = f"the {program} has no matrix product state path (sampler jobs do)"
        if reason is None and custom_noise:
            reason = (
                "options.simulator.noise_model is a custom model (only device noise is twirled)"
            )
        if reason is not None:
            raise _refuse_forced(
                MATRIX_PRODUCT_STATE,
                reason,
                "Submit circuits without control flow, or use --simulation-method auto.",
            )
        return Choice(MATRIX_PRODUCT_STATE, "--simulation-method matrix_product_state")
    if setting != AUTO:
        raise ValueError(f"unknown simulation method {setting!r}")
    if simulated_qubits <= AUTO_STATEVECTOR_QUBITS:
        within = (
            f"{simulated_qubits} simulated qubits (statevector up to {AUTO_STATEVECTOR_QUBITS})"
        )
        return _statevector_or_density(f"auto: {within}", runs, noisy)
    if custom_noise:
        return _statevector_or_density(
            "auto: a custom options.simulator.noise_model is kept exact", runs, noisy
        )
    reason = _not_clifford(circuits)
    if reason is None:
        return Choice(STABILIZER, f"auto: Clifford circuits on {simulated_qubits} qubits")
    wide = f"auto: not a Clifford circuit ({reason})"
    if runs and program in ("sampler", "estimator"):
        mps = _mps_choice(runs, noisy, max_job_seconds)
        if mps is not None:
            return Choice(MATRIX_PRODUCT_STATE, f"{wide}; {mps}")
    return _statevector_or_density(wide, runs, noisy)


def _statevector_or_density(why: str, runs: Sequence[Run], noisy: bool) -> Choice:
    """Aer's own rule (its `automatic` method), made explicit so the log says what ran: a
    noisy circuit on n < 30 qubits whose measurements all come last runs as one density
    matrix when its shots exceed 2^n, each shot a statevector trajectory otherwise."""
    density = [_density_is_cheaper(run) if noisy else False for run in runs]
    if runs and all(density):
        return Choice(
            DENSITY_MATRIX,
            f"{why}; noisy, more shots than 2^qubits: one density matrix instead of a "
            "trajectory per shot (Aer's rule)",
            aer_method=DENSITY_MATRIX,
        )
    if any(density):
        pubs = ", ".join(str(i) for i, chosen in enumerate(density) if chosen)
        return Choice(
            STATEVECTOR,
            f"{why}; Aer runs pub(s) {pubs} as a density matrix (more shots than 2^qubits)",
        )
    return Choice(STATEVECTOR, why, aer_method=STATEVECTOR if runs else "automatic")


def _density_is_cheaper(run: Run) -> bool:
    from emulator.simulation.mps import measurements_last
    from emulator.simulation.noise import active_qubits, fits_in_memory

    qubits = len(active_qubits(run.circuit))
    return (
        qubits < 30
        and run.shots > 2**qubits
        and fits_in_memory(2 * qubits)
        and measurements_last(run.circuit)
    )


def _mps_choice(runs: Sequence[Run], noisy: bool, limit_seconds: int) -> str | None:
    """Why `auto` takes the job to the MPS, or None. Only jobs the statevector cannot take
    (its state beyond the worker memory or STATEVECTOR_MAX_QUBITS, or its low estimate
    beyond `--max-job-seconds`) go there, so every job that ran before runs as it did; and
    only when every circuit's bond dimension bound stays within the cap (exact results)."""
    from emulator.simulation.mps import MAX_BOND, mps_reason, plan
    from emulator.simulation.noise import active_qubits, fits_in_memory

    bound, statevector, why = 1, 0.0, ""
    for run in runs:
        if mps_reason(run.circuit) is not None:
            return None
        layout = plan(run.circuit)
        if layout.max_bond > MAX_BOND:
            return None
        bound = max(bound, layout.max_bond)
        qubits = len(active_qubits(run.circuit))
        if qubits > STATEVECTOR_MAX_QUBITS or not fits_in_memory(qubits):
            why = f"a statevector of {qubits} qubits would not fit"
        statevector += statevector_seconds(
            _operations(run.circuit), qubits, run.shots * run.experiments, noisy
        )
    if not why and limit_seconds > 0 and statevector > limit_seconds:
        why = f"the statevector would take at least {_duration(statevector)}"
    if not why:
        return None
    return (
        f"{why}; bond dimension at most {bound} along the qubits' chain order: matrix product state"
    )


def _operations(circuit: QuantumCircuit) -> int:
    return sum(1 for i in circuit.data if i.operation.name not in ("barrier", "measure"))


def statevector_only(program: str, setting: str, runs: Sequence[Run] = ()) -> Choice:
    """The method of a program that has only the statevector family (so far): the forced
    statevector or density matrix, else Aer's rule between them (see choose_method)."""
    if setting in (STATEVECTOR, DENSITY_MATRIX):
        return Choice(setting, f"--simulation-method {setting}", aer_method=setting)
    why = f"{program} jobs run on the statevector or the density matrix"
    if setting in (STABILIZER, MATRIX_PRODUCT_STATE):
        why = f"--simulation-method {setting} serves sampler jobs; {why}"
    return _statevector_or_density(why, runs, noisy=True)


def statevector_seconds(operations: int, qubits: int, shots: int, noisy: bool) -> float:
    """A low estimate of a statevector simulation's seconds (see the constants above)."""
    if noisy:
        return shots * operations * 2.0**qubits * NOISY_SECONDS_PER_AMPLITUDE_OP
    return operations * 2.0**qubits * IDEAL_SECONDS_PER_AMPLITUDE_OP


AER_DEFAULT_SHOTS = 1024
"""Trajectories Aer's EstimatorV2 averages per parameter set (it sets no shots of its own)."""


def statevector_cost(
    runs: Iterable[Run], noise_model: NoiseModel, method: str = STATEVECTOR
) -> tuple[float, str]:
    """A low estimate of the seconds of statevector (or density matrix) runs, and the figures
    of the widest; (0, …) when one would not fit the worker memory: Aer refuses it at once
    itself, naming the memory limit, which is the better reason."""
    from emulator.simulation.noise import active_qubits, fits_in_memory

    noisy = not noise_model.is_ideal()
    density = method == DENSITY_MATRIX
    total, widest = 0.0, (0, 0, 0)
    for run in runs:
        qubits = len(active_qubits(run.circuit))
        if not fits_in_memory(2 * qubits if density else qubits):
            return 0.0, f"{method.replace('_', ' ')} of {qubits} qubits"
        operations = _operations(run.circuit)
        shots = run.shots * run.experiments
        if density:
            total += run.experiments * operations * 4.0**qubits * DENSITY_SECONDS_PER_ENTRY_OP
        else:
            total += statevector_seconds(operations, qubits, shots, noisy)
        widest = max(widest, (qubits, operations, shots))
    qubits, operations, shots = widest
    if density:
        return total, f"density matrix of {qubits} qubits, {operations} operations"
    how = "with device noise, each shot its own trajectory" if noisy else "noiseless"
    return total, f"statevector of {qubits} qubits, {operations} operations, {shots} shots {how}"


def refuse_if_too_long(
    limit_seconds: int,
    choice: Choice,
    runs: Sequence[Run],
    noise_model: NoiseModel | None,
    ideal: bool,
) -> None:
    """Fail the job before it runs when its method's low estimate passes `--max-job-seconds`
    (the stabilizer path is linear in circuit and shots: never refused). `noise_model` is
    Aer's for the statevector family; `ideal`: the job asked for an ideal NoiseModel."""
    if choice.method == MATRIX_PRODUCT_STATE:
        refuse_beyond(limit_seconds, *mps_cost(runs, noisy=not ideal))
    elif noise_model is not None:
        refuse_beyond(limit_seconds, *statevector_cost(runs, noise_model, choice.aer_method))


def mps_cost(runs: Iterable[Run], noisy: bool) -> tuple[float, str]:
    """A low estimate of the seconds of MPS runs (their operations; the bond dimension's
    work is only bounded from above), and the figures of the widest."""
    from emulator.simulation.mps import plan

    total, widest = 0.0, (0, 0, 0, 0)
    for run in runs:
        layout = plan(run.circuit)
        total += run.experiments * layout.seconds(run.shots, noisy)
        widest = max(widest, (len(layout.order), layout.operations, run.shots, layout.max_bond))
    qubits, operations, shots, bond = widest
    return total, (
        f"matrix product state of {qubits} qubits, {operations} operations, {shots} shots, "
        f"bond dimension up to {bond}"
    )


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
