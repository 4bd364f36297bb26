"""What error mitigation costs the `estimator` program, in process; prints figures.

    python bench/mitigation.py

Per resilience level: the median time of `run_program("estimator", …)` for a noisy Bell ⟨ZZ⟩
on `ibm_brisbane` (four identity CX pairs after the Bell pair, default precision: 4,096 shots)
and the value it gives, beside the floor: Aer's own EstimatorV2 on the same reduced noise
model (exact expectation values, no readout error, no sampling; what the emulator ran for
every level before mitigation was simulated).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qiskit import QuantumCircuit, transpile  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402
from qiskit_aer.primitives import EstimatorV2 as AerEstimator  # noqa: E402
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder  # noqa: E402

from emulator.domain.snapshots import load_snapshot  # noqa: E402
from emulator.simulation import run_program  # noqa: E402
from emulator.simulation.noise import backend_target, make_simulator, noise_model_for  # noqa: E402
from tests.circuits import noisy_bell  # noqa: E402

RUNS = 5


def noisy_bell_on(target: object) -> tuple[QuantumCircuit, SparsePauliOp]:
    circuit = noisy_bell()
    isa = transpile(circuit, target=target, initial_layout=[0, 1], optimization_level=0)
    return isa, SparsePauliOp("ZZ").apply_layout(isa.layout)


def main() -> None:
    snapshot = load_snapshot("ibm_brisbane", "brisbane")
    target = backend_target(snapshot)
    circuit, zz = noisy_bell_on(target)
    print(f"noisy Bell <ZZ> on ibm_brisbane, precision 1/64 (4096 shots), median of {RUNS}")
    for level in (0, 1, 2):
        params = {
            "pubs": [[circuit, [zz]]],
            "version": 2,
            "resilience_level": level,
            "options": {"seed_estimator": 1},
        }
        body = json.dumps(params, cls=RuntimeEncoder)
        times, value = [], 0.0
        for _ in range(RUNS):
            start = time.perf_counter()
            out = run_program("estimator", body, snapshot)
            times.append(time.perf_counter() - start)
            value = float(json.loads(out.result, cls=RuntimeDecoder)[0].data.evs[0])
        ms = statistics.median(times) * 1000
        print(f"  resilience_level {level}: {ms:7.1f} ms  <ZZ> {value:.3f}")
    simulator = make_simulator(noise_model_for(snapshot, {0, 1}), "statevector")
    estimator = AerEstimator.from_backend(simulator, options={"run_options": {"seed_simulator": 1}})
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        value = float(estimator.run([(circuit, zz)], precision=1 / 64).result()[0].data.evs)
        times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1000
    print(f"  floor (Aer EstimatorV2, exact): {ms:7.1f} ms  <ZZ> {value:.3f}")


if __name__ == "__main__":
    main()
