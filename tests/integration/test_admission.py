"""Runtime API admission control: pending-job limit and submission rate, 429 + Retry-After."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import SamplerV2
from qiskit_ibm_runtime.exceptions import IBMRuntimeError

from tests.conftest import CRN_B, INSTANCES, bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorServer, service_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("limited"),
        "--instances",
        INSTANCES,
        "--max-pending-jobs",
        "2",
        "--jobs-per-minute",
        "4",
        workers=0,  # jobs stay Queued: pending counts are exact
    ).start()
    yield server
    server.stop()


def test_pending_limit_then_rate_limit(limited: EmulatorServer) -> None:
    with httpx.Client(base_url=limited.url + "/api/v1", headers=bearer(limited.url)) as api:

        def submit(**headers: str) -> httpx.Response:
            return api.post("/jobs", json=sampler_body(), headers=headers)

        first, second = submit().json()["id"], submit().json()["id"]
        refused = submit()
        assert refused.status_code == 429, refused.text
        assert refused.json()["errors"][0]["code"] == "3458"
        assert int(refused.headers["Retry-After"]) >= 1
        # Limits are per instance: the other instance is not affected.
        assert submit(**{"Service-CRN": CRN_B}).status_code == 200
        # A pending job that ends frees its place.
        assert api.post(f"/jobs/{first}/cancel").status_code == 204
        third = submit()
        assert third.status_code == 200
        assert api.post(f"/jobs/{second}/cancel").status_code == 204
        assert submit().status_code == 200  # the 4th accepted submission this minute
        assert api.post(f"/jobs/{third.json()['id']}/cancel").status_code == 204
        rate = submit()
        assert rate.status_code == 429 and rate.json()["errors"][0]["code"] == "1202"
        assert 1 <= int(rate.headers["Retry-After"]) <= 60


def test_the_client_sees_the_429(limited: EmulatorServer, client_env: dict[str, str]) -> None:
    with service_for(limited, "--instance", CRN_B) as service:
        backend = service.backend("fake_manila")
        qc = QuantumCircuit(1)
        qc.measure_all()
        sampler = SamplerV2(mode=backend)
        sampler.run([qc])  # team-b's second pending job (the first test left one)
        with pytest.raises(IBMRuntimeError, match="429"):
            sampler.run([qc])
