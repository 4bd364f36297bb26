"""The basic scenario, run by one client version in its own venv (`tests/clients/matrix.py`).

Configured only by the environment `python -m emulator env` prints; uses nothing but the
client and qiskit. Sampler and Estimator jobs, `jobs()`, `job()` by id, a Session with a job,
and cancelling a job held Queued by the control plane. Prints one JSON line per step and
exits non-zero if any failed.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import urllib.request
from collections.abc import Callable
from typing import Any

SHOTS = 200


def _control(path: str, body: dict[str, Any] | None = None) -> Any:
    """The emulator's control plane, with the standard library only."""
    # The interception recipe has no QISKIT_IBM_URL: the runner names the server then.
    base = (
        os.environ.get("IBMQ_EMULATOR_URL")
        or os.environ["QISKIT_IBM_URL"].split("/experimental/")[0]
    )
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + "/_emulator" + path,
        data=data,
        method="PUT" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read() or b"null")


def main() -> int:
    import qiskit_ibm_runtime
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import EstimatorV2, QiskitRuntimeService, SamplerV2, Session

    service = QiskitRuntimeService()
    backend = service.backend("ibm_brisbane")
    manager = generate_preset_pass_manager(backend=backend, optimization_level=1)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    measured = bell.copy()
    measured.measure_all()
    isa = manager.run(measured)
    ok = True
    state: dict[str, Any] = {}

    def step(name: str, run: Callable[[], Any]) -> None:
        nonlocal ok
        try:
            detail = run()
            print(json.dumps({"step": name, "ok": True, "detail": detail}))
        except Exception:  # noqa: BLE001 - every failure is reported, the next step still runs
            ok = False
            print(json.dumps({"step": name, "ok": False, "detail": traceback.format_exc()[-800:]}))

    def sampler() -> str:
        job = SamplerV2(mode=backend).run([isa], shots=SHOTS)
        counts = job.result()[0].data.meas.get_counts()
        assert sum(counts.values()) == SHOTS, counts
        assert (counts.get("00", 0) + counts.get("11", 0)) / SHOTS > 0.8, counts
        state["job_id"] = job.job_id()
        return job.job_id()

    def estimator() -> float:
        circuit = manager.run(bell)
        zz = SparsePauliOp("ZZ").apply_layout(circuit.layout)
        value = float(EstimatorV2(mode=backend).run([(circuit, zz)]).result()[0].data.evs)
        assert 0.7 < value < 1.2, value
        return value

    def jobs() -> int:
        listed = [j.job_id() for j in service.jobs(limit=10)]
        assert state["job_id"] in listed, listed
        return len(listed)

    def job_by_id() -> str:
        again = service.job(state["job_id"])
        assert again.status() in ("DONE", "COMPLETED"), again.status()
        return str(again.status())

    def session() -> str:
        with Session(backend=backend) as opened:
            job = SamplerV2(mode=opened).run([isa], shots=SHOTS)
            assert job.session_id == opened.session_id
            job.result()
            return str(opened.session_id)

    def cancel() -> str:
        _control("/progression", {"mode": "manual"})
        try:
            job = SamplerV2(mode=backend).run([isa], shots=SHOTS)
            job.cancel()
            status = str(job.status())
            assert status in ("CANCELLED", "CANCELED"), status
            return status
        finally:
            _control("/progression", {"mode": "immediate"})

    print(json.dumps({"client": qiskit_ibm_runtime.__version__}))
    for name, run in (
        ("sampler", sampler),
        ("estimator", estimator),
        ("jobs", jobs),
        ("job", job_by_id),
        ("session", session),
        ("cancel", cancel),
    ):
        step(name, run)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
