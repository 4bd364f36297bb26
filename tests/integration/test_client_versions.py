"""Older clients, unmodified in their own venvs, run the basic scenario (Sampler, Estimator,
`jobs()`, `job()`, Session, cancel) configured only by `env`: the oldest that honours
`IAM_URL` (0.49) on every change; `make test-clients` runs every supported version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.testing import EmulatorServer
from tests.clients.matrix import (
    QRMI_VERSIONS,
    qrmi_path,
    run_pytest,
    run_qrmi_tests,
    run_scenario,
)

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


def test_the_plugin_serves_from_the_interpreter_ibmq_emulator_python_names(tmp_path: Path) -> None:
    """A project whose venv keeps an older client points the plugin at a venv that has the
    emulator and its client: the server process runs from that interpreter."""
    import os
    import sys

    marker = tmp_path / "served-by-the-other-interpreter"
    other = tmp_path / "other-python"  # stands for another venv's interpreter: it leaves a mark
    other.write_text(f"#!/bin/sh\ntouch '{marker}'\nexec '{sys.executable}' \"$@\"\n")
    other.chmod(0o755)
    (tmp_path / "test_uses_the_plugin.py").write_text(
        "def test_server(emulator_server):\n    assert emulator_server.health()['status'] == 'ok'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IBMQ_EMULATOR_")}
    env["IBMQ_EMULATOR_PYTHON"] = str(other)
    test = str(tmp_path / "test_uses_the_plugin.py")
    done = run_pytest("--rootdir", str(tmp_path), test, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker.exists()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", QRMI_VERSIONS)
def test_older_qrmi_runs_the_runtime_resource_tests(version: str) -> None:
    """qrmi 0.23's generated client needs `usage.seconds` on a job status (among others)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(qrmi_path(version))}
    imported = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m, qrmi; print(m.version('qrmi'))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert imported == version
    done = run_qrmi_tests(version)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "3 passed" in done.stdout
