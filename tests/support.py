"""Test helpers: the shipped ones (`emulator.testing`), re-exported for the emulator's tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from emulator.testing import (
    EmulatorControl,
    EmulatorServer,
    applied_env,
    emulator_env,
    free_port,
    service_for,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent



class WorkerProcess:
    """`python -m emulator worker` as a subprocess (a worker node: no HTTP), logging to
    `log_path`; `stop()` sends SIGTERM, `kill_hard()` is a node dying (kill -9 of the node
    and its simulation processes)."""

    def __init__(self, data_dir: Path, *args: str, name: str = "worker") -> None:
        self.data_dir = data_dir
        self.args = ["--data-dir", str(data_dir), *args]
        self.log_path = data_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "emulator", "worker", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def poll(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def pool_id(self, timeout: float = 60.0) -> str:
        """The node's pool id (the prefix of its slots' worker ids), from its banner."""

        def banner() -> str | None:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            found = re.search(r"worker node (\w+):", text)
            return found.group(1) if found else None

        return wait_until(banner, timeout=timeout)

    def simulations(self) -> list[int]:
        """Pids of the node's simulation processes."""
        return [child.pid for child in simulation_processes(self.pid)]

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_hard()
            return self.process.returncode

    def kill_hard(self) -> None:
        assert self.process is not None
        children = psutil.Process(self.pid).children(recursive=True)
        self.process.kill()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.wait(10)
        psutil.wait_procs(children, timeout=10)


def simulation_processes(pid: int) -> list[psutil.Process]:
    """The simulation processes of the server or worker node `pid`: the children of its fork
    server (or, where there is none, its multiprocessing spawn children) — not the fork server
    itself, nor multiprocessing's resource tracker."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            parent = child.parent()
            forked = parent is not None and any("forkserver" in p for p in parent.cmdline())
            if forked or any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:  # gone meanwhile: not one of them any more
            continue
    return found


__all__ = [
    "ROOT",
    "WorkerProcess",
    "EmulatorControl",
    "EmulatorServer",
    "applied_env",
    "emulator_env",
    "free_port",
    "service_for",
    "simulation_processes",
    "wait_until",
]
