"""Wall time of utility-scale jobs through the unmodified client on `ibm_brisbane`; prints.

    python bench/scale_circuits.py              # starts its own emulator (1 worker)
    python bench/scale_circuits.py --url URL    # measures a running emulator

Rows: noisy GHZ Sampler jobs on 24, 50 and 127 qubits (Clifford: the stabilizer path), a
127-qubit Clifford Estimator with 10 Pauli observables, shallow Trotter circuits on 60 and 100
qubits (non-Clifford: the matrix product state), and how long a clearly impossible job
(22 densely entangled non-Clifford qubits, 4,096 noisy shots) takes to be refused. Each row
is submit → result decoded (or the failure raised), as a user sees it; the method the job log
names is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.circuits import dense_circuit, ghz, trotter_circuit  # noqa: E402
from tests.support import EmulatorServer, emulator_env  # noqa: E402


def method_of(job) -> str:  # noqa: ANN001
    for line in job.logs().splitlines():
        if "method:" in line:
            return line.split("method:", 1)[1].strip()
    return "?"


def measure(url: str, shots: int) -> None:
    os.environ.update(emulator_env(url))
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import EstimatorV2, QiskitRuntimeService, SamplerV2

    backend = QiskitRuntimeService().backend("ibm_brisbane")
    pm = generate_preset_pass_manager(backend=backend, optimization_level=1, seed_transpiler=1)

    def row(name: str, submit) -> None:  # noqa: ANN001
        start = time.perf_counter()
        job = submit()
        try:
            job.result()
            outcome = "done"
        except Exception as exc:  # noqa: BLE001 - a refusal is a row too
            outcome = f"failed: {str(exc)[:90]}…"
        seconds = time.perf_counter() - start
        print(f"{name:48} {seconds:7.2f} s  {outcome}  [{method_of(job)[:60]}]", flush=True)

    for width in (24, 50, 127):
        circuit = pm.run(ghz(width))
        row(
            f"noisy GHZ-{width} sampler, {shots} shots",
            lambda c=circuit: SamplerV2(mode=backend).run([c], shots=shots),
        )
    circuit = pm.run(ghz(127, measure=False))
    labels = ["I" * (125 - k) + "ZZ" + "I" * k for k in range(9)] + ["Z" + "I" * 125 + "Z"]
    observables = [SparsePauliOp(label).apply_layout(circuit.layout) for label in labels]
    row(
        "127-qubit Clifford estimator, 10 observables",
        lambda: EstimatorV2(mode=backend).run([(circuit, observables)]),
    )
    for width in (60, 100):
        circuit = pm.run(trotter_circuit(width))
        row(
            f"noisy Trotter-{width} sampler (2 steps), {shots} shots",
            lambda c=circuit: SamplerV2(mode=backend).run([c], shots=shots),
        )
    impossible = pm.run(dense_circuit(22))
    row(
        "22 dense non-Clifford qubits (refused)",
        lambda: SamplerV2(mode=backend).run([impossible], shots=4096),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="measure this running emulator instead of starting one")
    parser.add_argument("--shots", type=int, default=4096)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.url:
        measure(args.url, args.shots)
        return
    with tempfile.TemporaryDirectory() as data:
        server = EmulatorServer(Path(data), workers=1).start()
        try:
            server.wait_workers_ready()
            print(f"emulator with 1 worker at {server.url}; {os.cpu_count()} cores")
            measure(server.url, args.shots)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
