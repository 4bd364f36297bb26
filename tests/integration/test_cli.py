"""The CLI contract: `env` exports, `--version`, `serve` start-up, shutdown and API keys."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from qiskit_ibm_runtime.accounts import InvalidAccountError

from tests.conftest import CLIENT_VARIABLES, CRN_A, CRN_B, INSTANCES
from tests.support import ROOT, EmulatorServer, emulator_env, service_for

EXPORTS = set(CLIENT_VARIABLES)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
    )


def test_version() -> None:
    from emulator import __version__

    out = run_cli("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_env_without_a_server_points_everything_at_loopback() -> None:
    values = emulator_env("http://127.0.0.1:1")  # nothing listens there
    assert set(values) == EXPORTS
    assert values["QISKIT_IBM_URL"] == "http://127.0.0.1:1/experimental/api/v1"
    assert values["IAM_URL"] == "http://127.0.0.1:1/iam"
    for name in ("QISKIT_IBM_URL", "IAM_URL", "GLOBAL_SEARCH_URL", "GLOBAL_CATALOG_URL"):
        assert values[name].startswith("http://127.0.0.1:1/")
    assert values["QISKIT_IBM_INSTANCE"].startswith("crn:v1:")


def test_env_defaults_to_the_port_setting_and_reads_settings() -> None:
    out = run_cli("env", EMULATOR_PORT="8123", EMULATOR_API_KEYS="k1,k2")
    assert "export IAM_URL=http://127.0.0.1:8123/iam" in out.stdout
    assert "export QISKIT_IBM_TOKEN=k1" in out.stdout


def test_env_warns_about_a_non_loopback_url() -> None:
    out = run_cli("env", "--url", "http://192.0.2.10:8000")
    assert out.returncode == 0 and "not a loopback" in out.stderr
    assert "export IAM_URL=http://192.0.2.10:8000/iam" in out.stdout


@pytest.mark.parametrize("version", ["0.41.1", "0.30.0", "0.48.2"])
def test_env_prints_no_exports_for_a_client_that_ignores_iam_url(version: str) -> None:
    """Clients before 0.49 send the API key to IBM's IAM host whatever IAM_URL says: `env`
    must not hand them a recipe (exit 3, nothing on stdout, the reason on stderr)."""
    out = run_cli("env", "--url", "http://127.0.0.1:1", "--client-version", version)
    assert out.returncode == 3 and out.stdout == ""
    assert "ignores IAM_URL" in out.stderr and version in out.stderr


def test_env_prints_exports_for_clients_that_read_iam_url() -> None:
    out = run_cli("env", "--url", "http://127.0.0.1:1", "--client-version", "0.49.0")
    assert out.returncode == 0 and "export IAM_URL=http://127.0.0.1:1/iam" in out.stdout


def test_env_takes_the_default_instance_of_the_running_server(server: EmulatorServer) -> None:
    assert emulator_env(server.url)["QISKIT_IBM_INSTANCE"] == CRN_A


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "ibmq-emulator"
    out = subprocess.run(
        [str(script), "env", "--url", "http://127.0.0.1:1"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "IAM_URL" in out.stdout


def test_serve_refuses_bad_settings(tmp_path: Path) -> None:
    out = run_cli("serve", "--workers", "-1", "--data-dir", str(tmp_path))
    assert out.returncode != 0 and "workers" in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_shuts_down_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    server = EmulatorServer(tmp_path, workers=1).start()
    assert "an emulator, not IBM Quantum" in server.log()
    assert server.stop(sig) == 0
    assert "Traceback" not in server.log()


def test_configured_api_keys_scope_instances(tmp_path: Path, client_env: dict[str, str]) -> None:
    server = EmulatorServer(
        tmp_path, "--instances", INSTANCES, "--api-keys", "good-key,team-b-key=team-b", workers=0
    ).start()
    try:
        iam = server.url + "/iam/identity/token"
        grant = "urn:ibm:params:oauth:grant-type:apikey"
        unknown = httpx.post(iam, data={"grant_type": grant, "apikey": "bad-key"})
        assert unknown.status_code == 400 and unknown.json()["errorCode"] == "BXNIM0415E"
        warned = run_cli("env", "--url", server.url)
        assert "--api-key" in warned.stderr  # the server's keys are never revealed
        with service_for(server, "--api-key", "good-key") as service:
            assert {i["crn"] for i in service.instances()} == {CRN_A, CRN_B}
        token = httpx.post(iam, data={"grant_type": grant, "apikey": "team-b-key"}).json()
        headers = {"Authorization": "Bearer " + token["access_token"]}
        found = httpx.post(
            server.url + "/globalsearch/v3/resources/search", json={}, headers=headers
        )
        assert [i["crn"] for i in found.json()["items"]] == [CRN_B]
        denied = httpx.get(
            server.url + "/api/v1/backends", headers={**headers, "Service-CRN": CRN_A}
        )
        assert denied.status_code == 403
        with pytest.raises(InvalidAccountError, match="Unable to retrieve instances"):
            with service_for(server, "--api-key", "bad-key"):
                pass
    finally:
        server.stop()


@pytest.mark.parametrize("level", ["info", "debug"])
def test_serve_prints_a_banner_and_logs_requests_only_when_debugging(
    tmp_path: Path, level: str
) -> None:
    """A line per request costs more than a status poll (docs/performance.md): only at debug;
    the control plane's request journal records every request at any level."""
    server = EmulatorServer(tmp_path, "--log-level", level, workers=0).start()
    try:
        assert httpx.get(server.url + "/api/v1/versions").status_code == 200
    finally:
        server.stop()
    log = server.log()
    assert "an emulator, not IBM Quantum" in log
    assert f"listening on {server.url}" in log and f"dashboard: {server.url}/_emulator/" in log
    assert f"data in {tmp_path.resolve()}" in log
    assert f'eval "$(python -m emulator env --url {server.url})"' in log
    logged = '"GET /api/v1/versions HTTP/1.1" 200' in log
    assert logged == (level == "debug")


def test_banner_of_a_server_on_every_interface_points_clients_at_loopback(tmp_path: Path) -> None:
    server = EmulatorServer(tmp_path, "--host", "0.0.0.0", workers=0).start()
    server.stop()
    port = server.port
    assert f"listening on http://0.0.0.0:{port}" in server.log()
    assert f'env --url http://127.0.0.1:{port})"' in server.log()
    assert f"dashboard: http://127.0.0.1:{port}/_emulator/" in server.log()


def test_device_gpu_without_a_gpu_refuses_to_start_saying_why() -> None:
    from emulator.simulation.noise import gpu_available

    if gpu_available():
        pytest.skip("this machine has a GPU Aer can use")
    out = run_cli("serve", "--device", "GPU", "--port", "1")
    assert out.returncode != 0
    assert "qiskit-aer-gpu" in out.stderr and "--device CPU" in out.stderr
    bad = run_cli("serve", "--device", "TPU")
    assert bad.returncode != 0 and "device: must be 'CPU' or 'GPU'" in bad.stderr
