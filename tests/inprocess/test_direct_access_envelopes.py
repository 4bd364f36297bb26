"""Direct Access API in-process: versions, auth, backends, reservations and submit status codes.

Moved from tests/integration/test_direct_access_http.py: none of these needs a worker, a process
boundary or a real socket, so they run on `create_app` behind TestClient, configured as that
module's server (two instances, its reservations, 50 lanes, 1 MiB bodies). Jobs stay as submitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import CRN_B, INSTANCES
from tests.inprocess import bearer, serve, sibling
from tests.integration.test_direct_access_http import (
    FIXTURES,
    RESERVATIONS,
    assert_error,
    job_body,
    submit,
)
from tests.objects import ObjectServer, object_server


@pytest.fixture(scope="module")
def da_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Unauthenticated client on an app with the integration module's server settings."""
    with serve(
        tmp_path_factory.mktemp("direct-access"),
        instances=tuple(INSTANCES.split(",")),
        reservations=tuple(RESERVATIONS.split(",")),
        request_read_timeout=1,
        max_request_mb=1,
        lanes_per_backend=50,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def da(da_client: TestClient) -> Iterator[TestClient]:
    """Authenticated client on that app, paths from the root (as "/v1/jobs"), as team-a."""
    with sibling(da_client, "", bearer(da_client)) as client:
        yield client


@pytest.fixture(scope="module")
def da_runtime(da_client: TestClient) -> Iterator[TestClient]:
    """Runtime API client (paths relative to /api/v1) on the same app."""
    with sibling(da_client, "/api/v1", bearer(da_client)) as client:
        yield client


@pytest.fixture(scope="module")
def objects() -> Iterator[ObjectServer]:
    """Presigned-URL target: nothing reads it here (no workers), but submissions name it."""
    with object_server() as server:
        yield server


# -- versions, auth, backends ------------------------------------------------------------------


def test_versions_need_no_token(da_client: TestClient) -> None:
    assert da_client.get("/version").json() == {"version": "2025-08-15"}
    assert "2025-08-15" in da_client.get("/versions").json()["versions"]


@pytest.mark.parametrize("authorization", [None, "Bearer nonsense", "Basic x"])
def test_bad_credentials_are_401(da_client: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_error(da_client.get("/v1/backends", headers=headers), 401, "1201")


def test_unknown_service_crn_is_401_1200(da: TestClient) -> None:
    assert_error(da.get("/v1/backends", headers={"Service-CRN": "crn:v1:nope::"}), 401, "1200")


def test_backends_with_status_and_reservation_lock(da: TestClient) -> None:
    backends = {b["name"]: b for b in da.get("/v1/backends").json()["backends"]}
    assert set(backends) == {"ibm_brisbane", "ibm_fez", "fake_manila"}  # no mock_* twins
    assert backends["fake_manila"] == {
        "name": "fake_manila",
        "status": "online",
        "message": "available",
        "version": backends["fake_manila"]["version"],
        "locked": False,
    }
    assert backends["ibm_brisbane"]["locked"] is True  # reserved for team-b now
    assert backends["ibm_fez"]["locked"] is False  # reservation only in the future
    owner_view = da.get("/v1/backends/ibm_brisbane", headers={"Service-CRN": CRN_B}).json()
    assert owner_view["locked"] is False


def test_backend_documents_and_lanes(da: TestClient) -> None:
    assert da.get("/v1/backends/ibm_fez/configuration").json()["n_qubits"] == 156
    assert da.get("/v1/backends/ibm_fez/properties").json()["qubits"]
    assert da.get("/v1/backends/ibm_fez/defaults").json() == {}
    lanes = da.get("/v1/backends/ibm_fez/lanes").json()
    assert lanes == {"hpc_workload_manager": {"lanes": 50}, "ibm_quantum_compute": {"lanes": 0}}


@pytest.mark.parametrize("suffix", ["", "/configuration", "/properties", "/defaults", "/lanes"])
def test_unknown_backend_is_404_1216(da: TestClient, suffix: str) -> None:
    assert_error(da.get(f"/v1/backends/ibm_nowhere{suffix}"), 404, "1216", "ibm_nowhere")
    assert_error(da.get(f"/v1/backends/mock_fez{suffix}"), 404, "1216")


# -- POST /v1/jobs status codes ------------------------------------------------------------------


def test_malformed_json_is_400(da: TestClient) -> None:
    response = da.post("/v1/jobs", content=b"{nope", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "1400", "body")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "id"),
        ({"id": "x" * 257}, "id"),
        ({"backend": None}, "backend"),
        ({"program_id": "executor"}, "program_id"),
        ({"timeout_secs": 0}, "timeout_secs"),
        ({"timeout_secs": "10"}, "timeout_secs"),
        ({"timeout_secs": None}, "timeout_secs"),
        ({"log_level": "verbose"}, "log_level"),
        ({"storage": None}, "storage"),
        (
            {"storage": {"input": {"type": "s3_compatible", "presigned_url": "http://x/i"}}},
            "storage.results",
        ),
        ({"storage": {"input": {"type": "ftp"}, "results": {}}}, "storage.input.type"),
        ({"storage": {"input": {"type": "ibmcloud_cos"}, "results": {}}}, "storage.input.type"),
        (
            {"storage": {"input": {"type": "s3_compatible"}, "results": {}}},
            "storage.input.presigned_url",
        ),
    ],
)
def test_schema_violations_are_422_naming_the_field(
    da: TestClient, objects: ObjectServer, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**job_body(objects), **change}.items() if v is not None}
    assert_error(da.post("/v1/jobs", json=body), 422, "1422", field)
    assert da.get(f"/v1/jobs/{body.get('id', 'x')}").status_code == 404 or not body.get("id")


def test_unknown_backend_on_submit_is_404(da: TestClient, objects: ObjectServer) -> None:
    assert_error(da.post("/v1/jobs", json=job_body(objects, "ibm_nowhere")), 404, "1216")


def test_duplicate_id_is_409(da: TestClient, objects: ObjectServer) -> None:
    job_id = submit(da, objects)
    body = job_body(objects, id=job_id)
    assert_error(da.post("/v1/jobs", json=body), 409, "1231", job_id)


def test_oversized_body_is_413(da: TestClient, objects: ObjectServer) -> None:
    body = job_body(objects, padding="x" * (2 * 1024 * 1024))
    assert_error(da.post("/v1/jobs", json=body), 413, "1413")


def test_reserved_backend_is_423_except_for_its_owner(
    da: TestClient, objects: ObjectServer
) -> None:
    body = job_body(objects, "ibm_brisbane")
    assert_error(da.post("/v1/jobs", json=body), 423, "1233")
    owner = {"Service-CRN": CRN_B}
    assert (
        da.post("/v1/jobs", json=job_body(objects, "ibm_brisbane"), headers=owner).status_code
        == 204
    )


def test_future_reservation_does_not_refuse_now(da: TestClient, objects: ObjectServer) -> None:
    assert da.post("/v1/jobs", json=job_body(objects, "ibm_fez")).status_code == 204


# -- job endpoints ---------------------------------------------------------------------------------


def test_list_is_ascending_and_only_the_callers(da: TestClient, objects: ObjectServer) -> None:
    first = submit(da, objects)
    second = submit(da, objects)
    mine = [j["id"] for j in da.get("/v1/jobs").json()["jobs"]]
    assert mine.index(first) < mine.index(second)
    theirs = [j["id"] for j in da.get("/v1/jobs", headers={"Service-CRN": CRN_B}).json()["jobs"]]
    assert first not in theirs
    assert_error(da.get(f"/v1/jobs/{first}", headers={"Service-CRN": CRN_B}), 404, "1291")


def test_runtime_jobs_are_not_direct_access_jobs(da_runtime: TestClient, da: TestClient) -> None:
    body = json.loads((FIXTURES / "post_jobs_sampler_body.json").read_text())
    job_id = da_runtime.post("/jobs", json=body).json()["id"]
    assert_error(da.get(f"/v1/jobs/{job_id}"), 404, "1291")
    assert job_id not in [j["id"] for j in da.get("/v1/jobs").json()["jobs"]]


# -- lanes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["all", "running"])
def test_lanes_fill_and_free(tmp_path: Path, rule: str) -> None:
    with (
        serve(tmp_path, lane_rule=rule) as root,
        sibling(root, "", bearer(root)) as client,
        object_server() as objs,
    ):
        ids = []
        for _ in range(5):
            body = job_body(objs)
            assert client.post("/v1/jobs", json=body).status_code == 204
            ids.append(body["id"])
        assert_error(client.post("/v1/jobs", json=job_body(objs)), 429, "1232", "fake_manila")
        # the check order puts a duplicate id before the lane check
        assert_error(client.post("/v1/jobs", json=job_body(objs, id=ids[0])), 409, "1231")
        # lanes are per backend
        assert client.post("/v1/jobs", json=job_body(objs, "ibm_fez")).status_code == 204
        assert client.post(f"/v1/jobs/{ids[0]}/cancel").status_code == 204
        cancelled_frees = client.post("/v1/jobs", json=job_body(objs)).status_code
        if rule == "all":
            assert cancelled_frees == 429  # a terminated job holds its lane until deleted
            assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 204
            assert client.post("/v1/jobs", json=job_body(objs)).status_code == 204
        else:
            assert cancelled_frees == 204  # only running jobs hold lanes
