"""Runtime programs the emulator executes: `sampler`, `estimator`, `executor`, `noise-learner`.

`validate_params` runs on the request path (cheap checks, no simulation); `run_program` runs in
a worker process and returns the exact results body the client decodes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from emulator.simulation.errors import (
    REASON_EXECUTION_FAILED,
    REASON_INTERNAL_ERROR,
    REASON_INVALID_JOB,
    InvalidParams,
    ProgramFailure,
)
from emulator.simulation.limits import DEFAULT_BUDGET, check_decoded_size
from emulator.simulation.methods import Policy
from emulator.simulation.params import RunOutput, parse_params_json

if TYPE_CHECKING:
    from emulator.domain.snapshots import BackendSnapshot

PROGRAM_IDS: frozenset[str] = frozenset(
    # qrmi's Runtime client names the noise learner `noiselearner`.
    {"sampler", "estimator", "executor", "noise-learner", "noiselearner"}
)

__all__ = [
    "PROGRAM_IDS",
    "DEFAULT_BUDGET",
    "REASON_EXECUTION_FAILED",
    "REASON_INTERNAL_ERROR",
    "REASON_INVALID_JOB",
    "InvalidParams",
    "Policy",
    "ProgramFailure",
    "RunOutput",
    "run_program",
    "validate_params",
    "warm_up",
]


def validate_params(
    program_id: str,
    params: object,
    snapshot: BackendSnapshot,
    max_decoded_bytes: int = DEFAULT_BUDGET,
) -> None:
    """Request-path check of a POST /jobs `params` value (plain `json.loads` output).

    First charges every compressed payload's decoded size to `max_decoded_bytes` (nothing is
    decoded past it), then decodes with the client's RuntimeDecoder (or the executor
    converter), coerces pubs and checks widths, shapes, shots, precision and observables.
    Raises InvalidParams naming the field.
    """
    check_decoded_size(params, max_decoded_bytes)
    _prepare(program_id, params, snapshot)


def run_program(
    program_id: str,
    params_json: str,
    snapshot: BackendSnapshot,
    max_decoded_bytes: int = DEFAULT_BUDGET,
    untrusted: bool = False,
    policy: Policy | None = None,
) -> RunOutput:
    """Worker side: decode stored params, simulate on qiskit-aer with the snapshot's noise.

    `untrusted`: the input was fetched from a URL (Direct Access), so a refusal describes it
    by size and field only, never by its content (what a URL returned must not leak back
    through the job's reason).

    Direct Access inputs reach the worker unvalidated (it fetches them), so the decoded-size
    budget is charged here too. Raises ProgramFailure for failures the user should see;
    anything else is a bug. `policy`: the server's method and time settings for the job.
    """
    if program_id == "sampler":
        from emulator.simulation.sampler import run_sampler as runner
    elif program_id == "estimator":
        from emulator.simulation.estimator import run_estimator as runner
    elif program_id == "executor":
        from emulator.simulation.executor import run_executor as runner
    elif program_id in ("noise-learner", "noiselearner"):
        from emulator.simulation.noise_learner import run_noise_learner as runner
    else:
        raise ProgramFailure(
            f"program {program_id!r} is not available", REASON_INVALID_JOB, "Use " + _known()
        )
    try:
        check_decoded_size(parse_params_json(params_json), max_decoded_bytes)
        if policy is not None and policy.dry_run:
            from emulator.simulation.dry_run import run_dry

            return run_dry(program_id, params_json, snapshot)
        return runner(params_json, snapshot, policy or Policy())
    except InvalidParams as exc:
        # Accepted at submission but unusable now (e.g. stored by an older emulator version).
        if untrusted:
            raise ProgramFailure(
                f"the job input ({len(params_json)} bytes) is not a valid {program_id} input "
                f"(at {_known_path(exc.field)})",
                REASON_INVALID_JOB,
                "Check the input the presigned URL serves and submit the job again.",
            ) from None
        raise ProgramFailure(
            f"invalid job input at {exc.field}: {exc.message}",
            REASON_INVALID_JOB,
            "Check the job parameters and submit the job again.",
        ) from exc


_FIELD_WORDS = frozenset(
    "params pubs options simulator seed_simulator default_shots shots precision "
    "default_precision observables parameter_values version support_qiskit noise_model "
    "quantum_program circuits items".split()
)


def _known_path(field: str) -> str:
    """`field` with every member name that is not one of the schemas' own replaced by `…`."""
    parts = re.split(r"(\.|\[\d+\])", field)
    return "".join(
        p if p in (".", "") or re.fullmatch(r"\[\d+\]", p) or p in _FIELD_WORDS else "…"
        for p in parts
    )


def warm_up(snapshot: BackendSnapshot) -> None:
    """Optional, at worker start: import the simulator and build the snapshot's Target.

    Saves the first job on each backend ~1 s of imports and 0.1-0.3 s of Target conversion.
    """
    import qiskit_aer.primitives  # noqa: F401 - imported for its load time only

    from emulator.simulation.noise import backend_target

    backend_target(snapshot)


def _prepare(program_id: str, params: Any, snapshot: BackendSnapshot) -> object:
    if program_id == "sampler":
        from emulator.simulation.sampler import prepare_sampler

        return prepare_sampler(params, snapshot)
    if program_id == "estimator":
        from emulator.simulation.estimator import prepare_estimator

        return prepare_estimator(params, snapshot)
    if program_id == "executor":
        from emulator.simulation.executor import prepare_executor

        return prepare_executor(params, snapshot)
    if program_id in ("noise-learner", "noiselearner"):
        from emulator.simulation.noise_learner import prepare_noise_learner

        return prepare_noise_learner(params, snapshot)
    raise InvalidParams("program_id", f"unknown program {program_id!r}; use {_known()}")


def _known() -> str:
    return ", ".join(sorted(PROGRAM_IDS))
