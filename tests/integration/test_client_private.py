"""A private job through the unmodified client: its params are never returned and its
results can be read once (IBM deletes them as they are read)."""

from __future__ import annotations

import httpx
import pytest
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

from tests.circuits import bell, isa

pytestmark = pytest.mark.slow


def test_a_private_jobs_results_are_read_once(
    client_env: dict[str, str], api: httpx.Client
) -> None:
    backend = QiskitRuntimeService().backend("ibm_brisbane")
    sampler = SamplerV2(mode=backend)
    sampler.options.environment.private = True
    job = sampler.run([isa(backend, bell())], shots=50)
    assert sum(job.result()[0].data.meas.get_counts().values()) == 50
    details = api.get(f"/jobs/{job.job_id()}").json()
    assert details["private"] is True and "params" not in details
    # IBM deletes them as they are read: a second read finds no result (204), which the
    # client returns as None (qiskit-ibm-runtime's own integration test asserts exactly that).
    assert job.result() is None
    again = api.get(f"/jobs/{job.job_id()}/results")
    assert again.status_code == 204 and again.content == b""
    assert api.get(f"/jobs/{job.job_id()}").json()["state"]["status"] == "Completed"


def test_a_public_jobs_results_are_read_any_number_of_times(
    client_env: dict[str, str],
) -> None:
    backend = QiskitRuntimeService().backend("ibm_brisbane")
    job = SamplerV2(mode=backend).run([isa(backend, bell())], shots=50)
    assert job.result()[0].data.meas.num_shots == job.result()[0].data.meas.num_shots == 50
