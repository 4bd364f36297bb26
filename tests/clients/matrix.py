"""Each client version, unmodified in its own venv, runs the basic scenario against a server.

    python tests/clients/matrix.py                      # every version in VERSIONS
    python tests/clients/matrix.py 0.49.0 0.51.0        # these

Venvs are cached per machine (`~/.cache/ibmq-emulator-clients/`, or
`IBMQ_EMULATOR_CLIENTS_CACHE`; one per version, built once by pip). The server runs
from this checkout's interpreter; the client is configured only by `python -m emulator env`.
Versions before 0.49 ignore `IAM_URL` and would send the API key to IBM's IAM host: they run
through the interception recipe (`serve --intercept-port`, `env --intercept`) only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from emulator.testing import EmulatorServer, emulator_env, free_port  # noqa: E402

VERSIONS = ("0.51.0", "0.50.0", "0.49.0")
INTERCEPTED_VERSIONS = ("0.41.1", "0.40.1")
"""Clients before 0.49 (they ignore `IAM_URL`): run through `env --intercept` only."""
QRMI_VERSIONS = ("0.23.1",)
"""Older qrmi releases, beside the installed one (the suite's own qrmi tests run with them)."""
"""Clients that honour `IAM_URL` (0.49 and later), newest first."""
CACHE = Path(
    os.environ.get("IBMQ_EMULATOR_CLIENTS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ibmq-emulator-clients"
)
"""Where the client venvs are built, once per machine (like pip's own cache: a fresh clone's
CI run reuses them); `IBMQ_EMULATOR_CLIENTS_CACHE` moves it."""
SCENARIO = Path(__file__).with_name("scenario.py")


@dataclass
class Outcome:
    version: str
    steps: dict[str, bool] = field(default_factory=dict)
    output: str = ""
    intercepted: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(self.steps.values())


def _release(version: str) -> tuple[int, int]:
    major, minor = (int(part) for part in version.split(".")[:2])
    return major, minor


def honours_iam_url(version: str) -> bool:
    """0.49 is the first qiskit-ibm-runtime that reads IAM_URL."""
    return _release(version) >= (0, 49)


def client_python(version: str) -> Path:
    """The interpreter of a venv holding exactly `qiskit-ibm-runtime==version` (and what it
    requires), built on first use."""
    venv = CACHE / f"qiskit-ibm-runtime-{version}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # Releases before 0.37 import what qiskit 2 removed (qiskit.qobj): give them qiskit 1.
        extra = ["qiskit<2"] if _release(version) < (0, 37) else []
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"qiskit-ibm-runtime=={version}",
                *extra,
            ],
            check=True,
        )
        stamp.touch()
    return python


def qrmi_path(version: str) -> Path:
    """A directory holding qrmi `version` alone (its dependencies are this venv's), for
    PYTHONPATH, installed on first use."""
    target = CACHE / f"qrmi-{version}"
    if not (target / ".installed").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                f"qrmi=={version}",
            ],
            check=True,
        )
        (target / ".installed").touch()
    return target


def run_pytest(
    *args: str, env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess of this interpreter, quiet, without its cache."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def run_qrmi_tests(version: str) -> subprocess.CompletedProcess[str]:
    """This suite's qrmi Runtime-resource tests with qrmi `version` imported first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QISKIT_", "EMULATOR_"))}
    env["PYTHONPATH"] = str(qrmi_path(version))
    return run_pytest(
        "-p", "no:xdist", str(ROOT / "tests" / "integration" / "test_qrmi_qcs.py"), env=env
    )


def run_scenario(version: str, url: str, intercept: bool = False) -> Outcome:
    """The scenario with client `version`, configured by `env` (or `env --intercept`: the
    server must run with --intercept-port)."""
    if not intercept and not honours_iam_url(version):
        raise ValueError(f"qiskit-ibm-runtime {version} ignores IAM_URL: it runs intercepted only")
    python = client_python(version)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QISKIT_", "EMULATOR_"))}
    if intercept:
        env.update(emulator_env(url, "--intercept", "--client-version", version))
    else:
        env.update(emulator_env(url))
    env["IBMQ_EMULATOR_URL"] = url
    env.pop("PYTHONPATH", None)  # the client's venv only: not this checkout's packages
    done = subprocess.run(
        [str(python), str(SCENARIO)], env=env, capture_output=True, text=True, timeout=900
    )
    outcome = Outcome(version, output=done.stdout + done.stderr, intercepted=intercept)
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "step" in record:
            outcome.steps[record["step"]] = bool(record["ok"])
    return outcome


def main(versions: list[str], intercepted: list[str]) -> int:
    with tempfile.TemporaryDirectory() as data:
        server = EmulatorServer(Path(data), "--intercept-port", str(free_port()), workers=2).start()
        try:
            outcomes = [run_scenario(v, server.url) for v in versions]
            outcomes += [run_scenario(v, server.url, intercept=True) for v in intercepted]
        finally:
            server.stop()
    for outcome in outcomes:
        steps = ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in outcome.steps.items())
        how = " (intercepted)" if outcome.intercepted else ""
        verdict = "pass" if outcome.ok else "FAIL"
        print(f"qiskit-ibm-runtime {outcome.version}{how}: {verdict} ({steps})")
        if not outcome.ok:
            print(outcome.output[-3000:])
    ok = all(o.ok for o in outcomes)
    for version in QRMI_VERSIONS:
        done = run_qrmi_tests(version)
        print(f"qrmi {version}: {'pass' if done.returncode == 0 else 'FAIL'}")
        if done.returncode != 0:
            print((done.stdout + done.stderr)[-3000:])
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    asked = sys.argv[1:] or [*VERSIONS, *INTERCEPTED_VERSIONS]
    # By version, never by list: a client that ignores IAM_URL only ever runs intercepted.
    sys.exit(
        main(
            [v for v in asked if honours_iam_url(v)],
            [v for v in asked if not honours_iam_url(v)],
        )
    )
