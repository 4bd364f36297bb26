"""Test helpers: a real emulator process, its `env` exports, and deadline-based waiting."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorServer:
    """`python -m emulator serve` as a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, *extra: str, workers: int = 2, port: int | None = None):
        self.data_dir = data_dir
        self.extra = list(extra)
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    def start(self, timeout: float = 120.0) -> EmulatorServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--workers",
                str(self.workers),
                *self.extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_until(self._healthy, timeout=timeout, interval=0.1)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"emulator exited with {self.process.returncode}:\n{self.log()}")
        try:
            response = httpx.get(self.url + "/_emulator/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def health(self) -> dict:
        return httpx.get(self.url + "/_emulator/health", timeout=5.0).json()

    def wait_workers_ready(self, timeout: float = 120.0) -> None:
        wait_until(
            lambda: self.health()["workers_ready"] == self.workers, timeout=timeout, interval=0.2
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def emulator_env(url: str, *extra: str) -> dict[str, str]:
    """Parse the `export NAME=value` lines of `python -m emulator env --url URL`."""
    out = subprocess.run(
        [sys.executable, "-m", "emulator", "env", "--url", url, *extra],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            values[name] = shlex.split(value)[0] if value else ""
    return values


@contextmanager
def applied_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in this process's environment (where the clients read it), then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def service_for(server: EmulatorServer, *env_args: str) -> Iterator[Any]:
    """A QiskitRuntimeService configured only by `python -m emulator env` for `server`."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    with applied_env(emulator_env(server.url, *env_args)):
        yield QiskitRuntimeService()
