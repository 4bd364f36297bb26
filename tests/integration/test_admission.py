"""Runtime API admission: pending jobs and rate (429 + Retry-After), usage limits (409)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import SamplerV2
from qiskit_ibm_runtime.exceptions import IBMRuntimeError

from tests.circuits import bell, isa
from tests.conftest import CRN_A, CRN_B, INSTANCES, bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorServer, service_for, wait_until

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


# -- usage limits ----------------------------------------------------------------------------

# Any finished job uses more than a microsecond of simulation: one job reaches this limit.
TINY = "0.000001"


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("refusing"),
        "--instances",
        INSTANCES,
        "--usage-limits",
        f"team-a={TINY}",
        workers=1,
    ).start()
    yield server
    server.stop()


def test_usage_limit_reached_refuses_new_jobs(
    refusing: EmulatorServer, client_env: dict[str, str]
) -> None:
    with service_for(refusing) as service:
        fresh = service.usage()
        assert fresh["usage_limit_seconds"] == float(TINY) == fresh["usage_allocation_seconds"]
        assert fresh["usage_limit_reached"] is False and fresh["usage_remaining_seconds"] > 0
        backend = service.backend("fake_manila")
        sampler = SamplerV2(mode=backend)
        sampler.run([isa(backend, bell())]).result()
        spent = service.usage()
        assert spent["usage_limit_reached"] is True and spent["usage_remaining_seconds"] == 0
        assert spent["usage_consumed_seconds"] >= float(TINY)
        # The client only warns; the service refuses the submission.
        with (
            pytest.warns(UserWarning, match="met its usage limit"),
            pytest.raises(IBMRuntimeError, match="4317"),
        ):
            sampler.run([isa(backend, bell())])
    with service_for(refusing, "--instance", CRN_B) as other:
        assert "usage_limit_reached" not in other.usage()  # no limit: undefined, as IBM
        backend = other.backend("fake_manila")
        assert SamplerV2(mode=backend).run([isa(backend, bell())]).result()[0]


def test_usage_limit_refusal_is_a_409_and_stores_nothing(refusing: EmulatorServer) -> None:
    headers = {**bearer(refusing.url), "Service-CRN": CRN_A}
    with httpx.Client(base_url=refusing.url + "/api/v1", headers=headers) as api:
        before = api.get("/jobs").json()["count"]
        if api.get("/instances/usage").json()["usage_limit_reached"] is False:
            job_id = api.post("/jobs", json=sampler_body()).json()["id"]
            wait_until(lambda: api.get(f"/jobs/{job_id}").json()["status"] == "Completed")
            before += 1
        refused = api.post("/jobs", json=sampler_body())
        assert refused.status_code == 409, refused.text
        error = refused.json()["errors"][0]
        assert error["code"] == "4317" and "quota" in error["message"]
        assert api.get("/jobs").json()["count"] == before


def _dry_noise_learner(api: httpx.Client) -> str:
    """A dry run charged its QPU-time estimate (a noise learner's: about a minute), so that
    an instance can consume whole seconds without a long simulation."""
    import json

    from qiskit_ibm_runtime import RuntimeEncoder

    circuit = QuantumCircuit(2)
    circuit.ecr(0, 1)
    params = json.loads(json.dumps({"circuits": [circuit], "options": {}}, cls=RuntimeEncoder))
    body = {"program_id": "noise-learner", "backend": "mock_brisbane", "params": params}
    created = api.post("/jobs", json=body)
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    wait_until(lambda: api.get(f"/jobs/{job_id}").json()["status"] == "Completed")
    return job_id


def test_an_instance_sets_its_own_usage_limit(refusing: EmulatorServer) -> None:
    headers = {**bearer(refusing.url), "Service-CRN": CRN_B}  # no server limit for team-b
    with httpx.Client(base_url=refusing.url + "/api/v1", headers=headers) as api:
        assert api.get("/instances/configuration").json() == {}
        _dry_noise_learner(api)
        used = api.get("/instances/usage").json()["usage_consumed_seconds"]
        assert 1 < used < 600, used

        below = api.put("/instances/configuration", json={"instance_limit": 1})
        assert below.status_code == 409 and below.json()["errors"][0]["code"] == "4318"
        bad = api.put("/instances/configuration", json={"instance_limit": 1.5})
        assert bad.status_code == 400 and "instance_limit" in bad.json()["errors"][0]["message"]

        limit = int(used) + 1  # room for one more submission, not for two dry runs
        put = api.put("/instances/configuration", json={"instance_limit": limit})
        assert put.status_code == 204
        assert api.get("/instances/configuration").json() == {"instance_limit": limit}
        usage = api.get("/instances/usage").json()
        assert usage["usage_limit_seconds"] == limit and usage["usage_limit_reached"] is False
        _dry_noise_learner(api)
        refused = api.post("/jobs", json=sampler_body())
        assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == "4317"

        # null removes the instance's own limit: the server's (none for team-b) applies.
        put = api.put("/instances/configuration", json={"instance_limit": None})
        assert put.status_code == 204
        assert api.get("/instances/configuration").json() == {}
        assert api.post("/jobs", json=sampler_body()).status_code == 200


@pytest.fixture(scope="module")
def holding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("holding"),
        "--instances",
        INSTANCES,
        "--usage-limits",
        f"team-a={TINY}",
        "--usage-limit-action",
        "hold",
        workers=1,  # one worker, oldest job first: what it skips, it skips on purpose
    ).start()
    yield server
    server.stop()


def test_hold_mode_keeps_jobs_queued_until_time_is_available(
    holding: EmulatorServer, client_env: dict[str, str]
) -> None:
    with service_for(holding) as service:
        backend = service.backend("fake_manila")
        sampler = SamplerV2(mode=backend)
        sampler.run([isa(backend, bell())]).result()
        with pytest.warns(UserWarning, match="met its usage limit"):
            held = sampler.run([isa(backend, bell())])
    with service_for(holding, "--instance", CRN_B) as other:
        backend = other.backend("fake_manila")
        assert SamplerV2(mode=backend).run([isa(backend, bell())]).result()[0]
    # The later job of the other instance ran; the held one (older) was skipped.
    assert held.status() == "QUEUED"
    held.cancel()
    assert held.status() == "CANCELLED"


def test_analytics_sum_the_instances_ended_jobs(refusing: EmulatorServer) -> None:
    headers = {**bearer(refusing.url), "Service-CRN": CRN_B}
    with httpx.Client(base_url=refusing.url + "/api/v1", headers=headers) as api:
        session = api.post("/sessions", json={"mode": "batch", "backend": "fake_manila"}).json()
        for body in (sampler_body(), sampler_body(session_id=session["id"])):
            job_id = api.post("/jobs", json=body).json()["id"]
            wait_until(
                lambda job_id=job_id: api.get(f"/jobs/{job_id}").json()["status"] == "Completed"
            )
        listed = api.get("/jobs", params={"limit": 200, "include_mocks": "true"}).json()["jobs"]
        ended = [j for j in listed if j["status"] in ("Completed", "Failed", "Cancelled")]
        usage = api.get("/analytics/usage").json()
        assert usage["jobs"] == len(ended) and len(usage) == 21
        assert usage["batch_sessions"] == 1 and usage["sessions"] == 1
        assert usage["individual_jobs"] == sum(1 for j in ended if not j.get("session_id"))
        assert usage["usage"] > 0 and usage["queue_time"] >= 0
        grouped = api.get("/analytics/usage_grouped", params={"group_by": "backend"}).json()
        assert {g["key"] for g in grouped["data"]} == {j["backend"] for j in ended}
        by_date = api.get(
            "/analytics/usage_grouped_by_date", params={"group_by": "instance"}
        ).json()
        assert sum(d["jobs"] for d in by_date["data"]) == len(ended)
        assert {d["key"] for d in by_date["data"]} == {CRN_B}
        filters = api.get("/analytics/filters").json()
        assert filters["instances"] == [{"id": CRN_B, "deleted": False}] and filters["users"] == []
        # Another instance's CRN selects nothing: analytics serve the caller's instance only.
        assert api.get("/analytics/usage", params={"instance": CRN_A}).json()["jobs"] == 0
        for params in ({}, {"group_by": "colour"}):
            refused = api.get("/analytics/usage_grouped", params=params)
            assert refused.status_code == 400 and "group_by" in refused.text
        backwards = {
            "interval_start": "2026-02-01T00:00:00Z",
            "interval_end": "2026-01-01T00:00:00Z",
        }
        assert api.get("/analytics/usage", params=backwards).status_code == 400
