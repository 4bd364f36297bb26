"""Jobs per second for a burst of Sampler jobs, by worker count and deployment; prints.

    python bench/scale.py                          # SQLite only
    python bench/scale.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    python bench/scale.py --circuit heavy --jobs 24  # simulation-bound jobs (~1 s of CPU each)

`--circuit bell` (default) measures the service: a Bell job is milliseconds of simulation, so
the figure is the API, the store and the client. `--circuit heavy` (a noisy 12-qubit circuit)
measures the workers: the figure should grow with workers up to the machine's cores.

For each worker count (default 1, 2, 4): one `serve` node on SQLite; and, with --postgres
(a server the bench may create databases on; or IBMQ_EMULATOR_TEST_POSTGRES), one API node
(`serve --workers 0`) plus a worker node, and two API nodes plus a worker node. The burst goes
through the unmodified client (round-robin over the API nodes); the figure is burst size over
the time from the first submission to the last result, and its ratio to one worker.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import (  # noqa: E402
    EmulatorServer,
    WorkerProcess,
    applied_env,
    emulator_env,
)


def bell() -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def heavy() -> Any:
    """Noisy trajectories of an entangled 12-qubit circuit: about a second of CPU per job."""
    from tests.circuits import long_running_circuit

    return long_running_circuit(width=12, layers=4)


CIRCUITS = {"bell": (bell, "fake_manila"), "heavy": (heavy, "ibm_brisbane")}


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    import sqlalchemy

    name = f"emulator_bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sqlalchemy.make_url(server_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def worker_node(data_dir: Path, database_url: str, workers: int) -> Iterator[None]:
    node = WorkerProcess(
        data_dir, "--database-url", database_url, "--workers", str(workers)
    ).start()
    try:
        yield
    finally:
        node.stop(60)


def samplers(urls: list[str], circuit: Any, backend_name: str) -> list[Any]:
    """One SamplerV2 per API node, each client configured only by that node's `env`."""
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

    out = []
    for url in urls:
        with applied_env(emulator_env(url)):
            backend = QiskitRuntimeService().backend(backend_name)
        isa = generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuit)
        out.append((SamplerV2(mode=backend), isa))
    return out


def burst(urls: list[str], jobs: int, warm: int, shots: int, kind: str) -> float:
    """Jobs per second for `jobs` submitted at once, after `warm` jobs warmed the workers."""
    factory, backend_name = CIRCUITS[kind]
    pairs = samplers(urls, factory(), backend_name)
    for job in [
        pairs[i % len(pairs)][0].run([pairs[i % len(pairs)][1]], shots=shots) for i in range(warm)
    ]:
        job.result()
    start = time.perf_counter()
    submitted = [
        pairs[i % len(pairs)][0].run([pairs[i % len(pairs)][1]], shots=shots) for i in range(jobs)
    ]
    for job in submitted:
        job.result()
    return jobs / (time.perf_counter() - start)


def run(deployment: str, workers: int, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        if deployment == "SQLite, one node":
            server = EmulatorServer(root / "serve", workers=workers).start()
            stack.callback(server.stop)
            server.wait_workers_ready()
            urls = [server.url]
        else:
            url = stack.enter_context(postgres_database(args.postgres))
            nodes = 2 if deployment.startswith("PostgreSQL, two") else 1
            urls = []
            for index in range(nodes):
                api = EmulatorServer(
                    root / f"api-{index}", "--database-url", url, workers=0
                ).start()
                stack.callback(api.stop)
                urls.append(api.url)
            (root / "worker").mkdir()
            stack.enter_context(worker_node(root / "worker", url, workers))
        return burst(urls, args.jobs, warm=2 * workers, shots=args.shots, kind=args.circuit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--shots", type=int, default=100)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--circuit", choices=sorted(CIRCUITS), default="bell")
    parser.add_argument("--postgres", default=os.environ.get("IBMQ_EMULATOR_TEST_POSTGRES", ""))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    counts = [int(n) for n in args.workers.split(",")]
    deployments = ["SQLite, one node"]
    if args.postgres:
        deployments += ["PostgreSQL, one API node", "PostgreSQL, two API nodes"]
    else:
        print("(no --postgres: the PostgreSQL rows are left out)")
    print(
        f"burst of {args.jobs} {args.circuit} Sampler jobs ({args.shots} shots) "
        f"on {os.cpu_count()} cores"
    )
    print(f"{'deployment':28}" + "".join(f"{n:>4} worker(s)    " for n in counts))
    for deployment in deployments:
        rates = [run(deployment, n, args) for n in counts]
        cells = "".join(f"{r:7.1f} j/s ×{r / rates[0]:.2f}  " for r in rates)
        print(f"{deployment:28}{cells}", flush=True)


if __name__ == "__main__":
    main()
