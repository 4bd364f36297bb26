"""Written as a user of the pytest plugin would write it: only its fixtures, no emulator imports.

Copied into the README as the plugin's example.
"""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import SamplerV2
from qiskit_ibm_runtime.exceptions import RuntimeJobMaxTimeoutError


def bell_for(backend):  # type: ignore[no-untyped-def]
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return generate_preset_pass_manager(backend=backend, optimization_level=1).run(qc)


def test_sampler_job_runs(runtime_service) -> None:  # type: ignore[no-untyped-def]
    backend = runtime_service.backend("fake_manila")
    result = SamplerV2(mode=backend).run([bell_for(backend)]).result()
    assert set(result[0].data.meas.get_counts()) <= {"00", "01", "10", "11"}


def test_every_test_starts_empty(runtime_service) -> None:  # type: ignore[no-untyped-def]
    assert runtime_service.jobs() == []


def test_my_code_handles_a_timeout(runtime_service, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.cancel_next_jobs(reason="Ran too long", reason_code=1305)
    backend = runtime_service.backend("fake_manila")
    job = SamplerV2(mode=backend).run([bell_for(backend)])
    with pytest.raises(RuntimeJobMaxTimeoutError):
        job.result()


def test_a_queued_job_can_be_cancelled(runtime_service, emulator) -> None:  # type: ignore[no-untyped-def]
    emulator.hold_jobs()
    backend = runtime_service.backend("fake_manila")
    job = SamplerV2(mode=backend).run([bell_for(backend)])
    assert job.status() == "QUEUED"
    job.cancel()
    assert job.status() == "CANCELLED"
    assert [j["state"] for j in emulator.jobs()] == ["cancelled"]
