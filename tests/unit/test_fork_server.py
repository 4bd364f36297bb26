"""The fork server's preload: multiprocessing ignores a preload module that fails to import,
so nothing else would notice if warming stopped working (every worker would then import and
convert everything itself again, ~5 s of CPU each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from emulator.execution.preload import FORK_SERVER_MODULE, PRELOAD_BACKENDS

PROBE = f"""
import gc, sys
import {FORK_SERVER_MODULE}
from emulator.execution.worker import snapshot_of
from emulator.simulation import noise
print(sorted(name for name, _ in noise._targets), snapshot_of.cache_info().currsize)
print("qiskit_aer" in sys.modules, gc.get_freeze_count() > 0)
"""


def test_the_preload_imports_the_simulator_and_builds_the_named_backends_targets() -> None:
    specs = [["fake_manila", "manila"], ["ibm_fez", "fez"]]
    env = {**os.environ, PRELOAD_BACKENDS: json.dumps(specs)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "['fake_manila', 'ibm_fez'] 2"  # Targets built, snapshots loaded
    assert out[1] == "True True"


def test_a_bad_preload_list_costs_the_warm_up_only() -> None:
    env = {**os.environ, PRELOAD_BACKENDS: "not json"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[] 0" and out[1] == "True True"


def test_a_worker_loads_each_snapshot_once() -> None:
    """Loading copies a snapshot's documents (~30 ms for 127 qubits): once per process."""
    from emulator.execution.worker import snapshot_of

    assert snapshot_of("fake_manila", "manila") is snapshot_of("fake_manila", "manila")
