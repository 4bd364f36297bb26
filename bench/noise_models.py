"""In-process figures for the simulation path; prints, asserts nothing.

    python bench/noise_models.py

- reduced noise model build (the touched qubits only) against the full device model, on
  ibm_brisbane (127 q, a 2-qubit pair) and ibm_fez (156 q, 3 qubits);
- a burst of 20 Bell Sampler jobs on ibm_brisbane (validate + run, in-process), median per job.
Medians of a few repetitions; the ratio to the full build is the figure that travels between
machines.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _seconds(action, repeat: int = 5) -> float:  # noqa: ANN001 - any callable
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    from emulator.domain.snapshots import load_snapshot
    from emulator.simulation import noise, run_program, validate_params
    from tests.circuits import bell
    from tests.unit.test_programs import primitive_params

    brisbane = load_snapshot("ibm_brisbane", "brisbane")
    fez = load_snapshot("ibm_fez", "fez")
    target = noise.build_target(brisbane)
    pair = next(q for q in target["ecr"] if q is not None)

    def reduced(snapshot, qubits) -> None:  # noqa: ANN001
        # Targets stay cached (a warm worker has them); only the noise model is rebuilt.
        noise._noise_models.clear()
        noise.noise_model_for(snapshot, qubits)

    noise.backend_target(brisbane)
    noise.backend_target(fez)
    full = _seconds(lambda: noise.noise_model_from_target(target), repeat=2)
    pair_s = _seconds(lambda: reduced(brisbane, pair))
    fez_s = _seconds(lambda: reduced(fez, {10, 11, 12}))
    print(f"full ibm_brisbane noise model      {full * 1000:9.1f} ms")
    print(
        f"reduced, ibm_brisbane pair {pair}  {pair_s * 1000:9.1f} ms  ({full / pair_s:.0f}x less)"
    )
    print(f"reduced, ibm_fez 3 qubits          {fez_s * 1000:9.1f} ms")

    params = primitive_params(
        [[bell(noise.backend_target(brisbane))]], {"simulator": {"seed_simulator": 1}}
    )
    text = json.dumps(params)
    run_program("sampler", text, brisbane)  # warm caches, as a worker does at start
    per_job = []
    for _ in range(20):
        started = time.perf_counter()
        validate_params("sampler", params, brisbane)
        run_program("sampler", text, brisbane)
        per_job.append(time.perf_counter() - started)
    print(
        f"Bell Sampler job, in-process       {statistics.median(per_job) * 1000:9.1f} ms median; "
        f"burst of 20: {sum(per_job):.2f} s"
    )


if __name__ == "__main__":
    main()
