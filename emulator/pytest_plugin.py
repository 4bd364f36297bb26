"""pytest plugin shipped with the emulator (registered through the `pytest11` entry point).

Fixtures, all opt-in (nothing starts unless a test asks for one):

- `emulator_server` (session): `python -m emulator serve` on a free loopback port with its
  data in a temporary directory; or, when `IBMQ_EMULATOR_URL` is set, that running server.
  `IBMQ_EMULATOR_PYTHON` names another interpreter to serve from (a venv with the emulator
  and the client it needs) when the tests' venv keeps an older qiskit-ibm-runtime.
- `emulator` (function): an `EmulatorControl` for the control plane, after a full reset, so
  every test starts with no jobs, sessions or rules (`IBMQ_EMULATOR_ADMIN_TOKEN` is sent
  on every call, reads included, to a server started with `--admin-token`).
- `emulator_env` (function): the variables `python -m emulator env` prints, set in
  `os.environ` for the test (the clients read them there), as a dict.
- `runtime_service` (function): a `QiskitRuntimeService()` configured only by those variables.

Options: `--emulator-workers N` (default 2) and `--emulator-arg ARG` (repeatable, passed to
`serve`, e.g. `--emulator-arg=--backends=fake_manila`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.testing import (
    EmulatorControl,
    EmulatorServer,
    applied_env,
    temporary_data_dir,
)
from emulator.testing import (
    emulator_env as read_emulator_env,
)

URL_VARIABLE = "IBMQ_EMULATOR_URL"
PYTHON_VARIABLE = "IBMQ_EMULATOR_PYTHON"
TOKEN_VARIABLE = "IBMQ_EMULATOR_ADMIN_TOKEN"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ibmq-emulator", "IBM Quantum emulator")
    group.addoption(
        "--emulator-workers", type=int, default=2, help="simulation processes of the server"
    )
    group.addoption(
        "--emulator-arg", action="append", default=[], help="extra argument for `serve`"
    )


class _External:
    """A server someone else started: only its URL is known."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")


@pytest.fixture(scope="session")
def emulator_server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer | _External]:
    """The emulator for this test session (started once, stopped at the end)."""
    external = os.environ.get(URL_VARIABLE)
    if external:
        yield _External(external)
        return
    data_dir = temporary_data_dir()
    server = EmulatorServer(
        data_dir,
        *request.config.getoption("--emulator-arg"),
        workers=request.config.getoption("--emulator-workers"),
        python=os.environ.get(PYTHON_VARIABLE) or None,
    ).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture()
def emulator(emulator_server: EmulatorServer | _External) -> Iterator[EmulatorControl]:
    """The control plane, after a full reset of the server."""
    control = EmulatorControl(emulator_server.url, os.environ.get(TOKEN_VARIABLE))
    control.reset()
    try:
        yield control
    finally:
        control.close()


@pytest.fixture()
def emulator_env(emulator_server: EmulatorServer | _External) -> Iterator[dict[str, str]]:
    """`python -m emulator env` for the server, applied to `os.environ` during the test."""
    values = read_emulator_env(emulator_server.url)
    with applied_env(values):
        yield values


@pytest.fixture()
def runtime_service(emulator: EmulatorControl, emulator_env: dict[str, str]) -> Any:
    """A ready `QiskitRuntimeService`, pointed at the (freshly reset) emulator."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    return QiskitRuntimeService()
