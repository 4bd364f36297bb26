"""What multiprocessing's fork server does once, before it forks any worker process.

A worker process used to import qiskit, qiskit-aer and qiskit-ibm-runtime and convert each
backend's Target itself: ~3 s of CPU for the imports and ~1.7 s for the Targets, every time a
worker started — twice per server with two workers, and again after every cancel of a running
job (a cancel kills the process). The fork server does it once; each worker is forked from it
with the modules and the Targets already in memory (copy-on-write), so a replacement worker
is ready in milliseconds.

The fork server imports `FORK_SERVER_MODULE` (which calls `warm`; a preload module takes no
arguments), so the backends come from `PRELOAD_BACKENDS` in the environment, set by the pool
before the fork server starts. Nothing here runs a simulation: OpenMP thread pools must not
exist in a process that forks.
"""

from __future__ import annotations

import gc
import json
import os
import warnings

PRELOAD_BACKENDS = "EMULATOR_WORKER_PRELOAD"
FORK_SERVER_MODULE = "emulator.execution.fork_server"


def warm() -> None:
    """Import what a worker needs and build the backends' Targets, in this process."""
    # As in a worker: one thread per process (Aer's own threading would oversubscribe).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from emulator import simulation
        from emulator.execution.worker import snapshot_of  # the forked child's own code

        try:
            specs = json.loads(os.environ.get(PRELOAD_BACKENDS, "[]"))
        except ValueError:
            specs = []
        for name, source in specs:
            try:
                simulation.warm_up(snapshot_of(name, source))
            except Exception:  # noqa: BLE001 - warming is an optimisation; the worker retries
                pass
    # What was built here is never freed: keep it out of every child's collections.
    gc.freeze()
