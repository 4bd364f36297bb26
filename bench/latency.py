"""Client-observed latency of Bell Sampler jobs through the unmodified client; prints figures.

    python bench/latency.py                 # starts its own emulator on a free port
    python bench/latency.py --url URL       # measures a running emulator

Figures: median latency of sequential jobs (submit → result decoded), for the legacy SamplerV2
and the executor-based Sampler; one job's requests from the emulator's request journal (when
each started after the submission, how long the server took; the gaps are the client's own
time); wall time of a burst submitted at once then awaited (jobs/second); and the floor: the
same circuit on Aer's SamplerV2 in-process with the same reduced noise model (what the
emulator's simulation costs without HTTP, store and processes), beside the client's local
mode (`SamplerV2(mode=FakeBrisbane())`, the whole device's noise).
"""

from __future__ import annotations

import argparse
import calendar
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


def median_latency(run, count: int) -> tuple[float, float, float]:  # noqa: ANN001
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        latencies.append(time.perf_counter() - start)
    return statistics.median(latencies), min(latencies), max(latencies)


def journal_breakdown(url: str, run) -> None:  # noqa: ANN001
    """One job's requests as the server journaled them, relative to the submission."""
    import httpx

    httpx.delete(f"{url}/_emulator/requests")
    started = time.time()
    run()
    total = time.time() - started
    deadline = time.monotonic() + 10
    entries: list[dict] = []
    while time.monotonic() < deadline:  # the journal is written in batches
        entries = httpx.get(f"{url}/_emulator/requests", params={"limit": 50}).json()["requests"]
        if any(e["path"].endswith("/results") for e in entries):
            break
        time.sleep(0.05)
    print(f"one job's requests (client-observed {total * 1000:.0f} ms):")
    server = 0.0
    for entry in entries:
        # `at` is when the response ended.
        ended = calendar.timegm(time.strptime(entry["at"][:19], "%Y-%m-%dT%H:%M:%S"))
        ended += float("0." + entry["at"][20:26])
        began = ended - entry["duration_ms"] / 1000
        server += entry["duration_ms"]
        print(
            f"  +{(began - started) * 1000:6.1f} ms  {entry['method']:6} {entry['path'][:56]:56} "
            f"{entry['duration_ms']:6.1f} ms"
        )
    print(f"  server time {server:.0f} ms; client and network {total * 1000 - server:.0f} ms")


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

    median, low, high = median_latency(
        lambda: sampler.run([circuit], shots=shots).result(), sequential
    )
    print(
        f"sequential SamplerV2: {sequential} jobs, median latency {median * 1000:.0f} ms "
        f"(min {low * 1000:.0f}, max {high * 1000:.0f})"
    )
    from qiskit_ibm_runtime.executor_sampler import Sampler as ExecutorSampler

    executor = ExecutorSampler(mode=backend)
    executor.run([circuit], shots=shots).result()
    ex_median, ex_low, ex_high = median_latency(
        lambda: executor.run([circuit], shots=shots).result(), sequential
    )
    print(
        f"sequential executor Sampler: {sequential} jobs, median latency "
        f"{ex_median * 1000:.0f} ms (min {ex_low * 1000:.0f}, max {ex_high * 1000:.0f})"
    )
    journal_breakdown(url, lambda: sampler.run([circuit], shots=shots).result())

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

    from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

    from emulator.domain.snapshots import load_snapshot
    from emulator.simulation.noise import active_qubits, make_simulator, noise_model_for

    snapshot = load_snapshot("ibm_brisbane", "brisbane")
    model = noise_model_for(snapshot, active_qubits(circuit))
    floor_sampler = AerSamplerV2.from_backend(make_simulator(model), seed=1)
    floor, _, _ = median_latency(
        lambda: floor_sampler.run([(circuit, None, shots)]).result(), sequential
    )
    print(
        f"floor (Aer SamplerV2 in-process, same reduced noise): median {floor * 1000:.1f} ms; "
        f"emulator/floor ratio {median / floor:.1f}"
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
