"""Interception mode: code that names IBM's own URLs (a notebook's `token=` with no URL, a
client before 0.49 that ignores IAM_URL) runs unchanged through `env --intercept`, answered
by the emulator; a CONNECT to any other host is refused, and nothing leaves loopback."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.testing import EmulatorServer, emulator_env, free_port
from tests.clients.matrix import run_scenario

pytestmark = pytest.mark.slow

NOTEBOOK = """
import os
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

service = QiskitRuntimeService(
    channel="ibm_quantum_platform",
    token=os.environ["QISKIT_IBM_TOKEN"],
    instance=os.environ["QISKIT_IBM_INSTANCE"],
)  # no url: IBM's
backend = service.backend("ibm_brisbane")
qc = QuantumCircuit(2)
qc.h(0)
qc.cx(0, 1)
qc.measure_all()
isa = generate_preset_pass_manager(backend=backend, optimization_level=1).run(qc)
counts = SamplerV2(mode=backend).run([isa], shots=100).result()[0].data.meas.get_counts()
assert sum(counts.values()) == 100, counts
print("counts", counts)
"""


@pytest.fixture(scope="module")
def intercepting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("intercept"), "--intercept-port", str(free_port()), workers=1
    ).start()
    yield server
    server.stop()


def _connect(port: int, authority: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        return sock.recv(4096)


def test_a_notebook_naming_no_url_runs_through_the_interception_recipe(
    intercepting: EmulatorServer, tmp_path: Path
) -> None:
    values = emulator_env(intercepting.url, "--intercept")
    assert "QISKIT_IBM_URL" not in values and values["HTTPS_PROXY"].startswith("http://127.0.0.1:")
    assert Path(values["REQUESTS_CA_BUNDLE"]).exists()
    refused = intercepting.health()["intercept"]["refused"]
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QISKIT_", "IBMQ_"))}
    env.update(values)
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    after = intercepting.health()["intercept"]
    assert after["served"].get("quantum.cloud.ibm.com", 0) > 0, after
    assert after["refused"] == refused  # it asked for no host beyond IBM's: all answered here


def test_a_connect_to_any_other_host_is_refused_and_counted(
    intercepting: EmulatorServer,
) -> None:
    port = intercepting.health()["intercept"]["port"]
    before = intercepting.health()["intercept"]["refused"]
    assert _connect(port, "example.com:443").startswith(b"HTTP/1.1 403")
    assert _connect(port, "quantum.cloud.ibm.com.evil.example:443").startswith(b"HTTP/1.1 403")
    assert _connect(port, "iam.cloud.ibm.com:443").startswith(b"HTTP/1.1 200")
    after = intercepting.health()["intercept"]
    assert after["refused"] == before + 2
    assert "example.com" in after["last_refused"]


def test_the_ca_key_stays_in_the_data_dir_readable_by_its_owner_only(
    intercepting: EmulatorServer,
) -> None:
    key = intercepting.data_dir / "intercept" / "ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.timeout(900)  # builds the old client's venv on first use
def test_a_client_that_ignores_iam_url_runs_the_basic_scenario_intercepted(
    intercepting: EmulatorServer,
) -> None:
    refused = intercepting.health()["intercept"]["refused"]
    outcome = run_scenario("0.40.1", intercepting.url, intercept=True)
    assert outcome.ok, outcome.output[-3000:]
    after = intercepting.health()["intercept"]
    assert after["served"].get("iam.cloud.ibm.com", 0) > 0, after  # its IAM call, answered here
    assert after["refused"] == refused


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.timeout(900)
@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -rn` (a network namespace)")
@pytest.mark.parametrize("client", ["0.51.0-notebook", "0.40.1-scenario"])
def test_the_recipe_completes_with_no_network_at_all(client: str, tmp_path: Path) -> None:
    """Server and client in a network namespace with only loopback: a request that tried
    to leave would fail, so the finished job shows none did."""
    from tests.clients.matrix import SCENARIO, client_python

    version, kind = client.split("-")
    if kind == "notebook":
        python, script = sys.executable, tmp_path / "notebook.py"
        script.write_text(NOTEBOOK)
    else:
        python, script = str(client_python(version)), SCENARIO  # venv built outside
    offline = Path(__file__).resolve().parents[1] / "clients" / "offline.py"
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, str(offline), str(python), str(script)],
        capture_output=True,
        text=True,
        timeout=800,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "'refused': 0" in done.stdout


def test_the_recipe_names_the_channel_the_client_knows(intercepting: EmulatorServer) -> None:
    """qiskit-ibm-runtime 0.30 knows only `ibm_cloud` (it refuses `ibm_quantum_platform`)."""
    old = emulator_env(intercepting.url, "--intercept", "--client-version", "0.30.0")
    new = emulator_env(intercepting.url, "--intercept", "--client-version", "0.40.1")
    assert old["QISKIT_IBM_CHANNEL"] == "ibm_cloud"
    assert new["QISKIT_IBM_CHANNEL"] == "ibm_quantum_platform"


def test_env_intercept_without_an_intercepting_server_says_how(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "env", "--intercept", "--url", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == "" and "--intercept-port" in done.stderr
