"""Worker-side helpers around qiskit-aer: noise selection, failure mapping, warning capture."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from qiskit.exceptions import QiskitError

from emulator.simulation.errors import REASON_EXECUTION_FAILED, ProgramFailure
from emulator.simulation.noise import noise_model_for
from emulator.simulation.params import describe_error, format_qubits

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit
    from qiskit_aer.noise import NoiseModel

    from emulator.domain.snapshots import BackendSnapshot
    from emulator.simulation.methods import Choice, Policy, Run
    from emulator.simulation.params import SimulatorSettings

T = TypeVar("T")

_MAX_REASON = 2000


def select_noise(
    settings: SimulatorSettings, snapshot: BackendSnapshot, active: set[int], readout: bool = True
) -> tuple[NoiseModel, str]:
    """The user's `options.simulator.noise_model` if given, else the snapshot's, reduced
    (without its readout errors when `readout` is false)."""
    if settings.noise_model is not None:
        return (
            settings.noise_model,
            "noise: user-supplied NoiseModel (options.simulator.noise_model)",
        )
    model = noise_model_for(snapshot, active, readout)
    return model, (
        f"noise: {snapshot.name} calibration (snapshot {snapshot.source}) on the "
        f"{format_qubits(active)} the circuits use"
        + ("" if readout else " (readout errors drawn as IQ spread)")
    )


def stabilizer_noise_text(
    settings: SimulatorSettings, snapshot: BackendSnapshot, active: set[int]
) -> str:
    if settings.noise_model is not None:  # an ideal one: choose_method refuses any other
        return "noise: none (options.simulator.noise_model is an ideal NoiseModel)"
    return (
        f"noise: {snapshot.name} calibration (snapshot {snapshot.source}) on the "
        f"{format_qubits(active)} the circuits use, Pauli-twirled for the stabilizer method "
        "(each gate's error rate and the readout errors kept; coherent errors and relaxation's "
        "bias to |0> dropped)"
    )


def mps_noise_text(
    settings: SimulatorSettings, snapshot: BackendSnapshot, active: set[int], program: str
) -> str:
    from emulator.simulation.mps import TRAJECTORIES

    if settings.noise_model is not None:  # an ideal one: choose_method refuses any other
        return "noise: none (options.simulator.noise_model is an ideal NoiseModel)"
    how = (
        "the shots shared among them (each shot exact, shots of one realization correlated); "
        "readout errors calibrated"
        if program == "sampler"
        else "exact expectation values averaged over them (no readout error: what TREX estimates)"
    )
    return (
        f"noise: {snapshot.name} calibration (snapshot {snapshot.source}) on the "
        f"{format_qubits(active)} the circuits use, Pauli-twirled as for the stabilizer method "
        f"and drawn as {TRAJECTORIES} noise realizations per circuit, {how}"
    )


def method_and_noise(
    policy: Policy,
    circuits: Iterable[QuantumCircuit],
    active: set[int],
    settings: SimulatorSettings,
    snapshot: BackendSnapshot,
    log: list[str],
    runs: Sequence[Run] = (),
    program: str = "sampler",
    readout: bool = True,
) -> tuple[Choice, NoiseModel | None, str]:
    """The job's method and noise, both logged: Aer's noise model for the statevector and
    the density matrix (None on the stabilizer and MPS paths, which twirl the device noise
    themselves) and the noise line."""
    from emulator.domain.methods import MATRIX_PRODUCT_STATE, STABILIZER
    from emulator.simulation.methods import choose_method

    choice = choose_method(
        policy.method,
        circuits,
        len(active),
        settings.noise_model,
        runs,
        program=program,
        max_job_seconds=policy.max_job_seconds,
    )
    log.append(f"method: {choice.method} ({choice.reason})")
    noise_model = None
    if choice.method == STABILIZER:
        noise_text = stabilizer_noise_text(settings, snapshot, active)
    elif choice.method == MATRIX_PRODUCT_STATE:
        noise_text = mps_noise_text(settings, snapshot, active, program)
    else:
        noise_model, noise_text = select_noise(settings, snapshot, active, readout)
    log.append(noise_text)
    return choice, noise_model, noise_text


def simulate(run: Callable[[], T]) -> T:
    """Run a simulation, turning simulator refusals into a user-visible ProgramFailure."""
    try:
        return run()
    except MemoryError as exc:
        raise ProgramFailure(
            f"The simulation ran out of memory: {describe_error(exc)}",
            REASON_EXECUTION_FAILED,
            "Use fewer qubits, shots or parameter sets.",
        ) from exc
    except QiskitError as exc:
        # AerError (a QiskitError) carries Aer's own explanation, e.g. insufficient memory.
        message = str(exc.message if hasattr(exc, "message") else exc).strip()
        raise ProgramFailure(
            message[:_MAX_REASON] or type(exc).__name__,
            REASON_EXECUTION_FAILED,
            "The circuits cannot be simulated as submitted; reduce the number of qubits that "
            "interact or use fewer non-Clifford operations.",
        ) from exc


@contextmanager
def collected_warnings(log: list[str]) -> Iterator[None]:
    """Record library warnings as log lines instead of printing them (worker processes only);
    a ProgramFailure raised inside leaves with the log so far, so a failed job's log says
    what ran (method, noise, sizes) before why it failed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except ProgramFailure as exc:
            _add_warnings(log, caught)
            exc.log = list(log)
            raise
    _add_warnings(log, caught)


def _add_warnings(log: list[str], caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for item in caught:
        if issubclass(item.category, DeprecationWarning | PendingDeprecationWarning):
            continue
        text = f"warning: {item.category.__name__}: {item.message}"
        if text not in seen:
            seen.add(text)
            log.append(text[:500])
