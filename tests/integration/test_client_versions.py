"""Older clients, unmodified in their own venvs, run the basic scenario (Sampler, Estimator,
`jobs()`, `job()`, Session, cancel) configured only by `env`: the oldest that honours
`IAM_URL` (0.49) on every change; `make test-clients` runs every supported version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.testing import EmulatorServer
from tests.clients.matrix import run_scenario

pytestmark = pytest.mark.slow

OLDEST_WITH_IAM_URL = "0.49.0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    started = EmulatorServer(Path(tmp_path_factory.mktemp("clients")), workers=2).start()
    yield started
    started.stop()


@pytest.mark.timeout(900)  # the first run builds the client's venv (pip)
def test_the_oldest_client_that_reads_iam_url_runs_the_basic_scenario(
    server: EmulatorServer,
) -> None:
    outcome = run_scenario(OLDEST_WITH_IAM_URL, server.url)
    assert outcome.ok, outcome.output[-3000:]
    assert set(outcome.steps) == {"sampler", "estimator", "jobs", "job", "session", "cancel"}
