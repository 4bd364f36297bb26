"""Client-observed latency of Direct Access Bell Sampler jobs through the unmodified qrmi.

    python bench/direct_access.py            # starts its own emulator on a free port
    python bench/direct_access.py --url URL  # measures a running emulator

qrmi's own `RuntimeJobV2.result()` sleeps 1 s between polls, which would hide the emulator's
figures; this drives qrmi's task API instead (`task_start` → `task_status` polled every 10 ms →
`task_result` → `task_stop`), which is the whole HTTP + S3 path: input PUT to the built-in
store, POST /v1/jobs, worker GET of the input, results/logs PUT, result GET, DELETE.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import EmulatorServer, emulator_env  # noqa: E402

BACKEND = "ibm_fez"


def bell_input(shots: int) -> str:
    from qiskit import QuantumCircuit, qasm3

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    text = qasm3.dumps(qc)
    return json.dumps({"pubs": [[text, None, shots]], "version": 2, "options": {}})


def run_one(resource, payload) -> float:  # noqa: ANN001
    from qrmi import TaskStatus

    start = time.perf_counter()
    job_id = resource.task_start(payload)
    while resource.task_status(job_id) not in {
        TaskStatus.Completed,
        TaskStatus.Failed,
        TaskStatus.Cancelled,
    }:
        time.sleep(0.01)
    resource.task_result(job_id)
    elapsed = time.perf_counter() - start
    resource.task_stop(job_id)
    return elapsed


def measure(url: str, sequential: int, shots: int) -> None:
    os.environ.update(emulator_env(url, "--qrmi", BACKEND))
    from qrmi import Payload, QuantumResource, ResourceType

    resource = QuantumResource(BACKEND, ResourceType.IBMQuantumSystem)
    payload = Payload.QiskitPrimitive(input=bell_input(shots), program_id="sampler")
    run_one(resource, payload)  # warm the worker's caches and the IAM token
    latencies = [run_one(resource, payload) for _ in range(sequential)]
    print(
        f"direct access (qrmi task API): {sequential} sequential jobs, median latency "
        f"{statistics.median(latencies) * 1000:.0f} ms (min {min(latencies) * 1000:.0f}, "
        f"max {max(latencies) * 1000:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running emulator (default: start one)")
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--shots", type=int, default=1000)
    args = parser.parse_args()
    if args.url:
        measure(args.url, args.sequential, args.shots)
        return
    with tempfile.TemporaryDirectory() as data:
        server = EmulatorServer(Path(data), workers=2).start()
        try:
            server.wait_workers_ready()
            measure(server.url, args.sequential, args.shots)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
