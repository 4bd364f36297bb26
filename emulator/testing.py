"""Test helpers shipped with the emulator: a real server process, its `env`, a control client.

Used by the pytest plugin (`emulator.pytest_plugin`) and by the emulator's own tests. The
server is always a separate process started with `python -m emulator serve`, so what a test
exercises is what users run.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


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

    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        workers: int = 2,
        port: int | None = None,
        python: str | None = None,
    ):
        self.data_dir = data_dir
        # Another interpreter (a venv with the emulator and its own client) when the tests'
        # venv keeps an older qiskit-ibm-runtime than the server needs.
        self.python = python or sys.executable
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
                self.python,
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

    def health(self) -> dict[str, Any]:
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


class EmulatorControl:
    """The control plane (`/_emulator`) with one helper per feature; raises on HTTP errors.

    `admin_token` (a server started with `--admin-token`) is sent on every call: changes and
    the reads of every tenant's jobs, sessions, journal and rules need it alike."""

    def __init__(self, url: str, admin_token: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.http = httpx.Client(base_url=self.url + "/_emulator", timeout=30.0, headers=headers)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.http.request(method, path, json=body, params=params or None)
        response.raise_for_status()
        return response.json() if response.content else None

    # inspection and reset
    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info")

    def reset(self, instance: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/reset", {"instance": instance} if instance else None)

    def jobs(self, **filters: Any) -> list[dict[str, Any]]:
        return self._call("GET", "/jobs", **filters)["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}")

    def sessions(self) -> list[dict[str, Any]]:
        return self._call("GET", "/sessions")["sessions"]

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        return self._call("GET", "/requests", **filters)["requests"]

    def seed(self, seed: int | None) -> None:
        self._call("POST", "/seed", {"seed": seed})

    # job progression and outcomes
    def hold_jobs(self, backend: str | None = None, release_after_polls: int | None = None) -> None:
        """Manual progression: new jobs stay Queued until released."""
        body: dict[str, Any] = {"mode": "manual", "backend": backend}
        if release_after_polls is not None:
            body["release_after_polls"] = release_after_polls
        self._call("PUT", "/progression", body)

    def timed_jobs(
        self, queue_seconds: float, run_seconds: float, backend: str | None = None
    ) -> None:
        self._call(
            "PUT",
            "/progression",
            {
                "mode": "timed",
                "queue_seconds": queue_seconds,
                "run_seconds": run_seconds,
                "backend": backend,
            },
        )

    def immediate_jobs(self, backend: str | None = None) -> None:
        self._call("PUT", "/progression", {"mode": "immediate", "backend": backend})

    def release(self, job_id: str | None = None, backend: str | None = None) -> list[str]:
        if job_id is not None:
            return self._call("POST", f"/jobs/{job_id}/release")["released"]
        return self._call("POST", "/release", {"backend": backend} if backend else None)["released"]

    def fail_next_jobs(
        self,
        reason: str = "Injected failure",
        reason_code: int = 1517,
        times: int = 1,
        **match: Any,
    ) -> dict[str, Any]:
        """The next `times` matching jobs (backend=, program_id=, instance=) end Failed."""
        body = {"state": "failed", "reason": reason, "reason_code": reason_code, "times": times}
        return self._call("POST", "/outcomes", {**body, **match})

    def cancel_next_jobs(
        self,
        reason: str = "Injected cancellation",
        reason_code: int | None = None,
        times: int = 1,
        **match: Any,
    ) -> dict[str, Any]:
        """Cancelled instead of run; reason_code=1305 makes the client raise a max-timeout error."""
        body = {"state": "cancelled", "reason": reason, "reason_code": reason_code, "times": times}
        return self._call("POST", "/outcomes", {**body, **match})

    def delay_next_jobs(self, seconds: float, times: int = 1, **match: Any) -> dict[str, Any]:
        """The next matching jobs succeed, but stay Running at least `seconds`."""
        body = {"state": "completed", "delay_seconds": seconds, "times": times}
        return self._call("POST", "/outcomes", {**body, **match})

    # HTTP faults, backends, reservations
    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """See `POST /_emulator/faults`: method, path (glob), api, status, times, probability,
        retry_after, latency_ms, action (respond | drop | lost_response | delay)."""
        return self._call("POST", "/faults", rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_backend_state(self, backend: str, state: str, message: str = "") -> None:
        self._call("PUT", f"/backends/{backend}/state", {"state": state, "message": message})

    def reserve(
        self, backend: str, start: str, end: str, instance: str | None = None
    ) -> dict[str, Any]:
        body = {"backend": backend, "start": start, "end": end, "instance": instance}
        return self._call("POST", "/reservations", body)


def temporary_data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ibmq-emulator-"))
