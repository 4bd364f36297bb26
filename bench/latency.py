"""Client-observed latency of Bell Sampler jobs through the unmodified client; prints figures.

    python bench/latency.py                 # starts its own emulator on a free port
    python bench/latency.py --url URL       # measures a running emulator

Figures: median latency of sequential jobs (submit → result decoded), wall time of a burst
submitted at once then awaited (jobs/second), and the ratio to the client's own in-process
local mode (`SamplerV2(mode=FakeBrisbane())`) running the same circuit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import EmulatorServer, emulator_env  # noqa: E402


def bell():  # noqa: ANN201
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def measure(url: str, sequential: int, burst: int, shots: int) -> None:
    os.environ.update(emulator_env(url))
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2
    from qiskit_ibm_runtime.fake_provider import FakeBrisbane

    service = QiskitRuntimeService()
    backend = service.backend("ibm_brisbane")
    circuit = generate_preset_pass_manager(backend=backend, optimization_level=1).run(bell())
    sampler = SamplerV2(mode=backend)
    sampler.run([circuit], shots=shots).result()  # warm the worker's caches

    latencies = []
    for _ in range(sequential):
        start = time.perf_counter()
        sampler.run([circuit], shots=shots).result()
        latencies.append(time.perf_counter() - start)
    median = statistics.median(latencies)
    print(
        f"sequential: {sequential} jobs, median latency {median * 1000:.0f} ms "
        f"(min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f})"
    )

    start = time.perf_counter()
    jobs = [sampler.run([circuit], shots=shots) for _ in range(burst)]
    submitted = time.perf_counter() - start
    for job in jobs:
        job.result()
    wall = time.perf_counter() - start
    print(
        f"burst: {burst} jobs submitted in {submitted:.2f} s, all results in {wall:.2f} s "
        f"({burst / wall:.1f} jobs/s)"
    )

    local = SamplerV2(mode=FakeBrisbane())
    local_circuit = generate_preset_pass_manager(backend=FakeBrisbane(), optimization_level=1).run(
        bell()
    )
    local.run([local_circuit], shots=shots).result()
    local_times = []
    for _ in range(3):
        start = time.perf_counter()
        local.run([local_circuit], shots=shots).result()
        local_times.append(time.perf_counter() - start)
    local_median = statistics.median(local_times)
    print(
        f"in-process local mode (FakeBrisbane): median {local_median * 1000:.0f} ms; "
        f"emulator/in-process ratio {median / local_median:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="measure this running emulator instead of starting one")
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.url:
        measure(args.url, args.sequential, args.burst, args.shots)
        return
    with tempfile.TemporaryDirectory() as data:
        server = EmulatorServer(Path(data), workers=args.workers).start()
        try:
            server.wait_workers_ready()
            print(f"emulator with {args.workers} workers at {server.url}")
            measure(server.url, args.sequential, args.burst, args.shots)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
