"""Shared fixtures: one emulator process per test session, clients configured by `env` only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import EmulatorServer, emulator_env

CLIENT_VARIABLES = (
    "QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL",
    "IAM_URL", "GLOBAL_SEARCH_URL", "GLOBAL_CATALOG_URL", "QISKIT_IBM_RUNTIME_LOG_LEVEL",
)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """The shared emulator (2 workers) for tests that do not restart or reconfigure it."""
    instance = EmulatorServer(tmp_path_factory.mktemp("emulator"), workers=2).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def client_env(server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Apply `python -m emulator env` to this process, with an empty HOME (no saved accounts)."""
    values = emulator_env(server.url)
    saved = {k: os.environ.get(k) for k in (*CLIENT_VARIABLES, "HOME")}
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    os.environ.update(values)
    yield values
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def use_env(values: dict[str, str]) -> None:
    os.environ.update(values)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
