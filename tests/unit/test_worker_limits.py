"""Worker memory limits and how a worker's end is described."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil

from emulator.execution.supervisor import Crashed
from emulator.execution.worker import (
    MEMORY_ERRORS,
    memory_failure,
    memory_limit_mb,
    physical_memory_mb,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_memory_limit_is_the_machines_share_per_worker() -> None:
    total = physical_memory_mb()
    assert 0 < total <= psutil.virtual_memory().total >> 20
    assert memory_limit_mb(0, 4) == total // 4
    assert memory_limit_mb(300, 4) == 300
    assert memory_limit_mb(0, 0) == 0  # no workers, nothing to limit


def test_the_address_space_limit_turns_a_large_allocation_into_memory_error() -> None:
    """In a fresh process: the limit refuses 512 MiB (nothing is touched), small ones still work."""
    code = (
        "from emulator.execution.worker import address_space_mb, limit_address_space\n"
        "limit = limit_address_space(address_space_mb() + 64)\n"
        "small = bytearray(8 << 20)\n"
        "try:\n"
        "    bytearray(512 << 20)\n"
        "except MemoryError:\n"
        "    print('refused', limit)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("refused ") and int(out.split()[1]) > 64


def test_a_memory_failure_names_the_worker_limit() -> None:
    failed = memory_failure(64, "ERROR: Insufficient memory to run circuit")
    assert failed.reason.startswith("The simulation exceeded the worker memory limit of 64 MiB")
    assert "Insufficient memory" in failed.reason and failed.reason_code == 1517
    assert "--worker-memory-mb" in failed.solution
    assert "limit" not in memory_failure(0, "MemoryError").reason


def test_simulator_memory_errors_are_recognised_and_memory_slots_are_not() -> None:
    for text in (
        "ERROR: Insufficient memory to run circuit circuit-1 using the statevector simulator. "
        "Required memory: 1024M, max memory: 64M",
        "There is not enough memory to store states",
        "std::bad_alloc",
        "Cannot allocate memory by posix_memalign",
        "The simulation ran out of memory: MemoryError",
    ):
        assert MEMORY_ERRORS.search(text), text
    assert not MEMORY_ERRORS.search("Invalid Qobj experiment: not enough memory slots.")


def test_a_killed_worker_is_described_by_its_signal() -> None:
    killed = Crashed(-signal.SIGKILL)
    assert killed.describe(0) == "was killed by signal SIGKILL"
    with_limit = killed.describe(512)
    assert with_limit.startswith("was killed by signal SIGKILL")
    assert "worker memory limit of 512 MiB" in with_limit
    assert "memory" in Crashed(-signal.SIGABRT).describe(512)
    assert "memory" in Crashed(-signal.SIGSEGV).describe(512)


def test_other_ends_are_not_blamed_on_memory() -> None:
    assert Crashed(3).describe(512) == "exited with code 3"
    assert Crashed(-signal.SIGTERM).describe(512) == "was killed by signal SIGTERM"
    assert Crashed(None).describe(512) == "stopped answering"
