"""The wheel carries everything the server needs: built, installed into a fresh venv, served.

The fresh venv gets the project's dependencies through a `.pth` line to this venv's
site-packages (so the test downloads nothing but the build backend and one client) and the
wheel with `--no-deps`; the emulator package itself can only come from the wheel. Its own
qiskit-ibm-runtime is another supported release (0.50.0, which shadows this venv's 0.51.0):
the server depends on a range, not a pin, and serves this venv's client from it.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import httpx
import pytest
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import EstimatorV2, SamplerV2

from tests.circuits import bell, isa
from tests.support import ROOT, applied_env, free_port, wait_until

pytestmark = pytest.mark.slow


def run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


SERVER_CLIENT = "0.50.0"


def test_wheel_installs_next_to_another_client_and_serves_jobs(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "emulator/api/admin/dashboard.html" in names  # package data, not only code
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    )
    for dependency in ("qiskit-aer", "qiskit-ibm-runtime", "starlette", "uvicorn", "sqlalchemy"):
        assert f"Requires-Dist: {dependency}" in metadata

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    site = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
        ).strip()
    )
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    where = run(python, "-c", "import emulator; print(emulator.__file__)", cwd=tmp_path)
    assert where.startswith(str(fresh)), where
    run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        f"qiskit-ibm-runtime=={SERVER_CLIENT}",
        cwd=tmp_path,
    )
    served_by = run(
        python, "-c", "import qiskit_ibm_runtime as q; print(q.__version__)", cwd=tmp_path
    )
    assert served_by.strip() == SERVER_CLIENT

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            python,
            "-m",
            "emulator",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            tmp_path / "data",
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _healthy(url), timeout=120, interval=0.2)
        assert "IBM Quantum emulator" in httpx.get(url + "/_emulator/").text
        exports = run(python, "-m", "emulator", "env", "--url", url, cwd=tmp_path)
        values = dict(
            line[len("export ") :].split("=", 1)
            for line in exports.splitlines()
            if line.startswith("export ")
        )
        with applied_env(values):
            from qiskit_ibm_runtime import QiskitRuntimeService

            backend = QiskitRuntimeService().backend("fake_manila")
            result = SamplerV2(mode=backend).run([isa(backend, bell())]).result()
            # The Estimator's mitigation runs on the server's own client (0.50.0) code.
            circuit = isa(backend, bell(measure=False))
            zz = SparsePauliOp("ZZ").apply_layout(circuit.layout)
            value = float(EstimatorV2(mode=backend).run([(circuit, zz)]).result()[0].data.evs)
        assert set(result[0].data.meas.get_counts()) <= {"00", "01", "10", "11"}
        assert 0.7 < value < 1.2
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/_emulator/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
