"""Error mitigation for the `estimator` program, by the client's own executor-based Estimator.

qiskit-ibm-runtime ships the Estimator's mitigation as client-side code: its
`executor_estimator.prepare` turns pubs and options into a quantum program (qiskit-mitigation's
TREX readout calibration, gate-folding ZNE, Pauli and measurement twirling, all by samplomatic),
and its post-processor turns the samples into mitigated expectation values. The emulator runs
those two functions around its noisy Aer simulation (`run_quantum_program`, the client's local
runner), so `resilience_level`, `resilience.*` and `twirling.*` change the numbers exactly as the
client's algorithms define, readout errors included.

What the simulation cannot give is refused by field: PEC and PEA need learned layer noise
(`layer_noise_model`); dynamical decoupling is accepted and has no effect, because the device
noise model has no idle errors for it to suppress (stated in the log and the metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emulator.simulation.errors import InvalidParams
from emulator.simulation.params import describe_error, field_of, sanitize

if TYPE_CHECKING:
    from collections.abc import Mapping

    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions

DEFAULT_LEVEL = 1
"""IBM's `resilience_level` when the client sends none (TREX with measurement twirling)."""

# The wire's estimator options the client's EstimatorOptions model reads; the rest are the
# emulator's own (seed, simulator, precision), IBM-only (execution, environment) or ignored.
_SECTIONS = ("resilience", "twirling")
# V2 wire fields (the server Estimator's options) that the executor-based options model has
# no place for, by section path, with why they change nothing here.
_V2_ONLY = {
    ("resilience",): {"layer_noise_learning": "layer noise learning serves PEA and PEC only"},
    ("resilience", "measure_noise_learning"): {
        "shots_per_randomization": "the TREX calibration takes the pubs' shots per randomization"
    },
}


@dataclass(frozen=True)
class Mitigation:
    """The finalized options of one estimator job, and what the emulator says of them."""

    options: EstimatorOptions
    dynamical_decoupling: dict[str, Any]
    notes: list[str]

    @property
    def resilience(self) -> dict[str, Any]:
        r = self.options.resilience
        return {
            "measure_mitigation": bool(r.measure_mitigation),
            "zne_mitigation": bool(r.zne_mitigation),
            "pec_mitigation": bool(r.pec_mitigation),
        }

    @property
    def mitigated(self) -> bool:
        """Whether anything beyond plain sampling runs (the stabilizer and MPS paths cannot)."""
        r, t = self.options.resilience, self.options.twirling
        return bool(r.zne_mitigation or r.pec_mitigation or t.enable_gates)

    def randomizations(self, shots: int) -> tuple[int, int]:
        """(randomizations, shots per randomization) of a pub's `shots`, by the client's rule
        (one of all the shots without twirling)."""
        from qiskit_ibm_runtime.executor.calculate_twirling_shots import (
            calculate_twirling_shots,
        )

        t = self.options.twirling
        if not (t.enable_gates or t.enable_measure):
            return 1, shots
        return calculate_twirling_shots(shots, t.num_randomizations, t.shots_per_randomization)

    def work(self, shots: int, parameter_sets: int) -> tuple[int, int]:
        """(shots per experiment, experiments) the pub's program runs, for the time estimate:
        each parameter set once per randomization and per ZNE noise factor."""
        r = self.options.resilience
        randomizations, per = self.randomizations(shots)
        factors = 1.0
        if r.zne_mitigation:
            from qiskit_ibm_runtime.executor_estimator.utils import resolve_noise_factors

            # A circuit folded by factor λ runs λ times the gates: the cost grows with Σλ.
            factors = float(sum(resolve_noise_factors(r.zne)[0]))
        return per, max(1, round(parameter_sets * randomizations * factors))

    def metadata(self) -> dict[str, Any]:
        """IBM's result-level metadata: the settings that ran."""
        twirling = self.options.twirling.model_dump()
        return {
            "dynamical_decoupling": self.dynamical_decoupling,
            "twirling": twirling,
            "resilience": self.resilience,
        }


def _without_v2_only(
    value: dict[str, Any], path: tuple[str, ...], notes: list[str]
) -> dict[str, Any]:
    """A copy of an options section without the V2-only fields (noted), at any depth."""
    out = {}
    dropped = _V2_ONLY.get(path, {})
    for key, item in value.items():
        if key in dropped:
            if item is not None:
                notes.append(f"options.{'.'.join((*path, key))}: {dropped[key]}")
            continue
        out[key] = _without_v2_only(item, (*path, key), notes) if isinstance(item, dict) else item
    return out


def mitigation_options(level: int | None, options: Mapping[str, Any]) -> Mitigation:
    """The client's finalized `EstimatorOptions` for the wire's `resilience_level` and
    `options.{resilience, twirling, dynamical_decoupling}`; raises InvalidParams naming the
    field the options model rejects, or an option the emulator cannot simulate."""
    from pydantic import ValidationError
    from qiskit_ibm_runtime.executor_estimator.finalize_options import (
        finalize_estimator_options,
    )
    from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions

    notes: list[str] = []
    fields: dict[str, Any] = {"resilience_level": DEFAULT_LEVEL if level is None else level}
    for section in _SECTIONS:
        value = options.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidParams(f"params.options.{section}", "must be an object")
        fields[section] = _without_v2_only(value, (section,), notes)
    try:
        model = EstimatorOptions(**fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise InvalidParams(field_of("params.options", tuple(first["loc"])), first["msg"]) from exc
    except Exception as exc:  # noqa: BLE001 - a validator's own error, still the client's input
        raise InvalidParams("params.options.resilience", describe_error(exc)) from exc
    resilience = model.resilience
    if resilience.pec_mitigation:
        raise InvalidParams(
            "params.options.resilience.pec_mitigation",
            "PEC is not simulated by this emulator (it needs learned layer noise); use "
            "zne_mitigation with a gate-folding amplifier",
        )
    if resilience.zne_mitigation and resilience.zne.amplifier == "pea":
        raise InvalidParams(
            "params.options.resilience.zne.amplifier",
            "'pea' is not simulated by this emulator (it needs learned layer noise); use "
            "'gate_folding', 'gate_folding_front' or 'gate_folding_back'",
        )
    if resilience.zne_mitigation:
        from qiskit_ibm_runtime.executor_estimator.prepare import normalise_extrapolator
        from qiskit_ibm_runtime.executor_estimator.utils import (
            resolve_noise_factors,
            validate_noise_factors,
        )

        try:
            factors, _ = resolve_noise_factors(resilience.zne)
            validate_noise_factors(factors, normalise_extrapolator(resilience.zne.extrapolator))
        except Exception as exc:  # noqa: BLE001 - IBMInputValueError: too few noise factors
            raise InvalidParams(
                "params.options.resilience.zne.noise_factors", describe_error(exc)
            ) from exc
    if resilience.layer_noise_model is not None:
        raise InvalidParams(
            "params.options.resilience.layer_noise_model", "serves PEA and PEC only"
        )

    dd = options.get("dynamical_decoupling")
    if dd is not None and not isinstance(dd, dict):
        raise InvalidParams("params.options.dynamical_decoupling", "must be an object")
    try:
        from qiskit_ibm_runtime.options_models.dynamical_decoupling import (
            DynamicalDecouplingOptions,
        )

        decoupling = DynamicalDecouplingOptions(**(dd or {}))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ("dynamical_decoupling", *first["loc"])
        raise InvalidParams(field_of("params.options", loc), first["msg"]) from exc
    if decoupling.enable:
        notes.append(
            "dynamical_decoupling: accepted without effect (the device noise model has no idle "
            "errors for it to suppress)"
        )
    return Mitigation(
        options=finalize_estimator_options(model),
        dynamical_decoupling=decoupling.model_dump(),
        notes=notes,
    )


def describe(mitigation: Mitigation) -> str:
    """One log line: what runs."""
    r, t = mitigation.options.resilience, mitigation.options.twirling
    parts = [f"resilience_level {mitigation.options.resilience_level}:"]
    parts.append("TREX" if r.measure_mitigation else "no readout mitigation")
    if r.zne_mitigation:
        factors = r.zne.noise_factors
        parts.append(f"+ ZNE ({r.zne.amplifier}, noise factors {factors}, {r.zne.extrapolator})")
    twirls = [name for name, on in (("gates", t.enable_gates), ("measure", t.enable_measure)) if on]
    parts.append(f"; twirling: {', '.join(twirls) if twirls else 'off'}")
    return " ".join(parts).replace(" ;", ";")


def estimate_mitigated(
    pubs: list[EstimatorPub],
    mitigation: Mitigation,
    simulator: AerSimulator,
    seed: int,
) -> tuple[list[Any], list[str]]:
    """Each pub through the client's `prepare`, the noisy simulator and the client's
    post-processor. Returns IBM-shaped pub results and one log line per pub.

    One program per pub, because the client's program has a single shot count while IBM's
    server Estimator lets each pub keep its own precision.
    """
    from qiskit_ibm_runtime.decoders.executor_estimator.post_processor_v0_1 import (
        estimator_v2_post_processor_v0_1,
    )
    from qiskit_ibm_runtime.executor_estimator.prepare import prepare
    from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import (
        run_quantum_program,
    )
    from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions
    from qiskit_ibm_runtime.results.estimator_pub import EstimatorPubResult

    from emulator.simulation.executor import prune_for_estimator

    seeds = np.random.default_rng(seed)
    options = mitigation.options
    results, lines = [], []
    for index, pub in enumerate(pubs):
        program, _ = prepare([pub], options, precision=float(pub.precision))
        # The program measures every qubit the observables span (all of the device's, for an
        # ISA observable): leave the identity positions idle so that Aer drops them.
        prune_for_estimator(program, [])
        raw = run_quantum_program(
            simulator, program, SimulatorOptions(seed_simulator=int(seeds.integers(2**63)))
        )
        post = estimator_v2_post_processor_v0_1(raw)[0]
        shots = post_shots(program)
        randomizations, _ = mitigation.randomizations(shots)
        metadata: dict[str, Any] = {
            "target_precision": float(pub.precision),
            "shots": shots,
            "circuit_metadata": sanitize(dict(pub.circuit.metadata or {})),
            "num_randomizations": randomizations,
        }
        zne = post.metadata.get("resilience")
        if zne is not None:
            metadata["resilience"] = zne
        results.append(EstimatorPubResult(data=post.data, metadata=metadata))
        lines.append(
            f"pub {index}: {len(program.items)} program item(s) ({shots} shots, "
            f"{randomizations} randomization(s))"
        )
    return results, lines


def post_shots(program: Any) -> int:
    """The pub's total shots, as the client's prepare recorded them."""
    return int(program.passthrough_data["post_processor"]["shots"])
