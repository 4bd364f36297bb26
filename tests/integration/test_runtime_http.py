"""Runtime REST API at the HTTP level: every status code, envelope and field clients rely on."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import CRN_A, CRN_B, bearer
from tests.support import EmulatorServer, wait_until

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"
TERMINAL = {"Completed", "Failed", "Cancelled"}


def fixture_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return body


def sampler_body(**changes: Any) -> dict[str, Any]:
    """The captured SamplerV2 body (5-qubit Bell on fake_manila), seeded so it is deterministic."""
    body = fixture_body("post_jobs_sampler_body.json")
    body["params"]["options"] = {"simulator": {"seed_simulator": 7}, "default_shots": 64}
    body.update(changes)
    return body


def assert_envelope(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    error = body["errors"][0]
    assert error["code"] == code
    assert body["status_code"] == status and body["trace"]
    assert error["more_info"].startswith("https://")
    for word in words:
        assert word in error["message"], error["message"]


def submit(api: httpx.Client, body: dict[str, Any] | None = None, **headers: str) -> str:
    response = api.post("/jobs", json=body or sampler_body(), headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) >= {"id", "backend"}
    return str(answer["id"])


def wait_final(api: httpx.Client, job_id: str, **headers: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}", headers=headers).json()
        return job if job["state"]["status"] in TERMINAL else None

    return wait_until(final, timeout=120)


# -- IAM, Global Search, Global Catalog -------------------------------------------------------


def test_iam_issues_a_jwt_with_integer_iat_and_exp(server: EmulatorServer) -> None:
    response = httpx.post(
        server.url + "/iam/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": "k"},
    )
    body = response.json()
    assert response.status_code == 200 and body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert isinstance(claims["iat"], int) and claims["exp"] - claims["iat"] == 3600


def test_iam_rejects_other_grant_types(server: EmulatorServer) -> None:
    response = httpx.post(server.url + "/iam/identity/token", data={"grant_type": "password"})
    assert response.status_code == 400 and response.json()["errorCode"] == "BXNIM0109E"


def test_search_lists_instances_and_catalog_their_plan(server: EmulatorServer) -> None:
    headers = bearer(server.url)
    found = httpx.post(
        server.url + "/globalsearch/v3/resources/search?limit=100",
        json={"query": "service_name:quantum-computing"},
        headers=headers,
    ).json()
    assert [i["crn"] for i in found["items"]] == [CRN_A, CRN_B]
    assert found["search_cursor"] is None
    assert all(i["doc"]["extensions"] for i in found["items"])
    plan = httpx.get(f"{server.url}/globalcatalog/{found['items'][0]['service_plan_unique_id']}")
    assert plan.json()["metadata"]["pricing"]["type"] == "free"
    assert httpx.get(server.url + "/globalcatalog/nope").status_code == 404


# -- authentication and tenancy ----------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic abc",
        "Bearer " + jwt.encode({"iat": 1, "exp": 9999999999, "key": "k"}, "other-secret"),
    ],
)
def test_missing_or_foreign_token_is_401(server: EmulatorServer, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(server.url + "/api/v1/backends", headers=headers)
    assert_envelope(response, 401, "1201")


def test_unknown_service_crn_is_403(api: httpx.Client) -> None:
    response = api.get("/backends", headers={"Service-CRN": "crn:v1:unknown::"})
    assert_envelope(response, 403, "1200", "crn:v1:unknown::")


def test_any_prefix_before_api_v1(server: EmulatorServer) -> None:
    headers = bearer(server.url)
    for prefix in ("", "/experimental", "/some/gateway"):
        response = httpx.get(f"{server.url}{prefix}/api/v1/backends", headers=headers)
        assert response.status_code == 200, prefix


def test_versions_need_no_token(server: EmulatorServer) -> None:
    versions = httpx.get(server.url + "/api/v1/versions").json()["versions"]
    assert {"version": "2026-04-15", "status": "live"} in versions


@pytest.mark.parametrize(
    ("asked", "served"),
    [
        ("2026-04-15", "2026-04-15"),
        ("2027-01-01", "2026-04-15"),
        ("2020-05-05", "2025-01-01"),
        ("not-a-date", "2026-04-15"),
    ],
)
def test_any_ibm_api_version_is_accepted(api: httpx.Client, asked: str, served: str) -> None:
    response = api.get("/backends", headers={"IBM-API-Version": asked})
    assert response.status_code == 200 and response.headers["IBM-API-Version"] == served
    error = api.get("/jobs/nope", headers={"IBM-API-Version": asked})
    assert error.status_code == 404 and error.headers["IBM-API-Version"] == served


# -- backends ------------------------------------------------------------------------------------


def test_backend_list_has_what_least_busy_reads(api: httpx.Client) -> None:
    devices = {
        d["name"]: d
        for d in api.get("/backends", params={"include_mocks": "True"}).json()["devices"]
    }
    assert {"ibm_brisbane", "ibm_fez", "fake_manila"} <= set(devices)
    assert devices["ibm_brisbane"]["qubits"] == 127 and devices["ibm_fez"]["qubits"] == 156
    assert devices["fake_manila"]["qubits"] == 5
    assert devices["ibm_brisbane"]["status"]["name"] == "online"
    assert isinstance(devices["ibm_brisbane"]["queue_length"], int)
    assert devices["mock_fez"]["class"] == "mock"


def test_backend_documents(api: httpx.Client) -> None:
    conf = api.get("/backends/ibm_fez/configuration").json()
    assert conf["backend_name"] == "ibm_fez" and conf["n_qubits"] == 156 and conf["online_date"]
    assert conf["simulator"] is False
    props = api.get(
        "/backends/ibm_fez/properties", params={"updated_before": "2025-06-01T00:00:00Z"}
    )
    assert props.status_code == 200 and props.json()["qubits"]
    status = api.get("/backends/ibm_fez/status").json()
    assert status["state"] is True and status["status"] == "active" and "length_queue" in status


@pytest.mark.parametrize("suffix", ["configuration", "properties", "status", "defaults"])
def test_unknown_backend_is_404(api: httpx.Client, suffix: str) -> None:
    assert_envelope(api.get(f"/backends/ibm_nowhere/{suffix}"), 404, "1007", "ibm_nowhere")


def test_instance_usage(api: httpx.Client) -> None:
    usage = api.get("/instances/usage").json()
    assert usage["instance_id"] == CRN_A and isinstance(usage["usage_consumed_seconds"], float)
    # No limit configured: IBM leaves the limit fields undefined rather than false.
    assert "usage_limit_reached" not in usage and "usage_limit_seconds" not in usage
    period = usage["usage_period"]
    assert period["start_time"][8:10] == "01" and period["start_time"] < period["end_time"]


# -- POST /jobs validation: 4xx with the field, nothing stored -----------------------------------


def count_jobs(api: httpx.Client) -> int:
    return int(api.get("/jobs", params={"limit": 1}).json()["count"])


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"backend": "fake_manila", "params": {}}, 400, "1002", "program_id"),
        ({"program_id": "sampler", "params": {}}, 400, "1002", "backend"),
        ({"program_id": "sampler", "backend": "fake_manila"}, 400, "1002", "params"),
        (
            {"program_id": "qasm3-runner", "backend": "fake_manila", "params": {}},
            404,
            "1300",
            "qasm3-runner",
        ),
        (
            {"program_id": "sampler", "backend": "ibm_nowhere", "params": {}},
            400,
            "1007",
            "ibm_nowhere",
        ),
        (
            {"program_id": "sampler", "backend": "fake_manila", "params": {"pubs": "x"}},
            400,
            "1002",
            "params.pubs",
        ),
        (
            {"program_id": "sampler", "backend": "fake_manila", "params": {"pubs": []}},
            400,
            "1002",
            "params.pubs",
        ),
        (
            {
                "program_id": "sampler",
                "backend": "fake_manila",
                "params": {"pubs": [[{"__type__": "QuantumCircuit", "__value__": "bm90IHFweQ=="}]]},
            },
            400,
            "1002",
            "params.pubs[0]",
        ),
        ({**sampler_body(), "log_level": "LOUD"}, 400, "1002", "log_level"),
        ({**sampler_body(), "tags": ["t"] * 9}, 400, "1204", "tags"),
        ({**sampler_body(), "tags": "t"}, 400, "1002", "tags"),
        ({**sampler_body(), "cost": -1}, 400, "1002", "cost"),
    ],
)
def test_bad_submissions_are_rejected_with_their_field(
    api: httpx.Client, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = count_jobs(api)
    assert_envelope(api.post("/jobs", json=body), status, code, field)
    assert count_jobs(api) == before


def test_malformed_json_body_is_400(api: httpx.Client) -> None:
    response = api.post("/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_envelope(response, 400, "1002", "body")


def test_circuit_wider_than_backend_is_400(api: httpx.Client) -> None:
    body = fixture_body(
        "post_jobs_executor_sampler_body.json"
    )  # an ISA circuit for 156-qubit ibm_fez
    body["backend"] = "fake_manila"
    before = count_jobs(api)
    response = api.post("/jobs", json=body)
    assert response.status_code == 400, response.text
    assert "fake_manila" in response.json()["errors"][0]["message"]
    assert count_jobs(api) == before


# -- job lifecycle ---------------------------------------------------------------------------------


def test_job_runs_to_completion_with_timestamps_logs_and_metrics(api: httpx.Client) -> None:
    job_id = submit(api)
    job = wait_final(api, job_id)
    assert job["state"]["status"] == "Completed" and job["status"] == "Completed"
    assert job["program"] == {"id": "sampler"} and job["backend"] == "fake_manila"
    assert job["created"].endswith("Z") and job["ended"] >= job["created"]
    assert "params" not in api.get(f"/jobs/{job_id}", params={"exclude_params": "true"}).json()
    assert api.get(f"/jobs/{job_id}").json()["params"]["pubs"]
    result = api.get(f"/jobs/{job_id}/results")
    assert result.status_code == 200 and result.json()["__type__"] == "PrimitiveResult"
    metrics = api.get(f"/jobs/{job_id}/metrics").json()
    stamps = metrics["timestamps"]
    assert stamps["created"] <= stamps["running"] <= stamps["finished"]
    assert (
        metrics["usage"]["status"] == "complete" and metrics["usage"]["qpu_charge_time_seconds"] > 0
    )
    logs = api.get(f"/jobs/{job_id}/logs")
    assert logs.headers["content-type"].startswith("text/plain")
    for word in ("queued", "running", "completed"):
        assert word in logs.text.lower()


def test_cancel_a_finished_job_is_409_and_delete_then_404(api: httpx.Client) -> None:
    job_id = submit(api)
    wait_final(api, job_id)
    assert_envelope(api.post(f"/jobs/{job_id}/cancel"), 409, "1306", job_id)
    assert api.delete(f"/jobs/{job_id}").status_code == 204
    assert_envelope(api.get(f"/jobs/{job_id}"), 404, "1291", job_id)
    assert_envelope(api.delete(f"/jobs/{job_id}"), 404, "1291")
    assert_envelope(api.get(f"/jobs/{job_id}/results"), 404, "1291")


def test_queued_job_cancel_and_delete_rules(idle_api: httpx.Client) -> None:
    job_id = submit(idle_api)
    assert idle_api.get(f"/jobs/{job_id}").json()["state"]["status"] == "Queued"
    assert idle_api.get(f"/jobs/{job_id}/results").status_code == 204
    assert_envelope(idle_api.delete(f"/jobs/{job_id}"), 409, "1337", job_id)
    assert idle_api.post(f"/jobs/{job_id}/cancel").status_code == 204
    job = idle_api.get(f"/jobs/{job_id}").json()
    assert job["state"]["status"] == "Cancelled" and job["ended"]
    assert_envelope(idle_api.post(f"/jobs/{job_id}/cancel"), 409, "1306")
    assert idle_api.get(f"/jobs/{job_id}/results").status_code == 200
    assert idle_api.delete(f"/jobs/{job_id}").status_code == 204


@pytest.mark.parametrize(
    "method", ["get", "cancel", "delete", "results", "logs", "metrics", "tags"]
)
def test_unknown_job_is_404_everywhere(api: httpx.Client, method: str) -> None:
    calls = {
        "get": lambda: api.get("/jobs/nosuchjob"),
        "cancel": lambda: api.post("/jobs/nosuchjob/cancel"),
        "delete": lambda: api.delete("/jobs/nosuchjob"),
        "results": lambda: api.get("/jobs/nosuchjob/results"),
        "logs": lambda: api.get("/jobs/nosuchjob/logs"),
        "metrics": lambda: api.get("/jobs/nosuchjob/metrics"),
        "tags": lambda: api.put("/jobs/nosuchjob/tags", json={"tags": []}),
    }
    assert_envelope(calls[method](), 404, "1291", "nosuchjob")


def test_jobs_of_another_instance_are_invisible(api: httpx.Client) -> None:
    job_id = submit(api)  # default instance = team-a
    other = {"Service-CRN": CRN_B}
    assert_envelope(api.get(f"/jobs/{job_id}", headers=other), 404, "1291")
    assert_envelope(api.post(f"/jobs/{job_id}/cancel", headers=other), 404, "1291")
    assert_envelope(api.delete(f"/jobs/{job_id}", headers=other), 404, "1291")
    assert job_id not in [j["id"] for j in api.get("/jobs", headers=other).json()["jobs"]]
    own = submit(api, None, **other)
    assert wait_final(api, own, **other)["state"]["status"] == "Completed"
    assert api.get(f"/jobs/{own}").status_code == 404


def test_tags_replace_search_and_filter(api: httpx.Client) -> None:
    job_id = submit(api, sampler_body(tags=["alpha-run"]))
    response = api.put(f"/jobs/{job_id}/tags", json={"tags": ["Blue-Team", "run-42"]})
    assert response.status_code == 204 and response.content == b""
    assert sorted(api.get(f"/jobs/{job_id}").json()["tags"]) == ["Blue-Team", "run-42"]
    assert api.get("/tags", params={"type": "job", "search": "blue"}).json() == {
        "tags": ["Blue-Team"]
    }
    listed = api.get("/jobs", params=[("tags", "Blue-Team"), ("tags", "run-42")]).json()
    assert [j["id"] for j in listed["jobs"]] == [job_id] and listed["count"] == 1
    assert_envelope(api.put(f"/jobs/{job_id}/tags", json={"tags": ["x"] * 9}), 400, "1204")
    assert_envelope(api.put(f"/jobs/{job_id}/tags", json={"labels": []}), 400, "1002", "tags")
    assert_envelope(api.get("/tags", params={"type": "job", "search": "ab"}), 400, "1002", "search")
    assert_envelope(
        api.get("/tags", params={"type": "session", "search": "abc"}), 400, "1002", "type"
    )


def test_list_filters_sort_and_exact_count(idle_api: httpx.Client) -> None:
    ids = [submit(idle_api, sampler_body(tags=["listing"])) for _ in range(5)]
    listed = idle_api.get("/jobs", params={"tags": "listing", "limit": 2, "offset": 1}).json()
    assert listed["count"] == 5 and [j["id"] for j in listed["jobs"]] == ids[::-1][1:3]
    ascending = idle_api.get("/jobs", params={"tags": "listing", "sort": "ASC"}).json()["jobs"]
    assert [j["id"] for j in ascending] == ids
    first = ascending[0]["created"]
    after = idle_api.get("/jobs", params={"tags": "listing", "created_after": first}).json()
    assert after["count"] == 5
    before = idle_api.get(
        "/jobs", params={"tags": "listing", "created_before": "2000-01-01T00:00:00Z"}
    )
    assert before.json()["count"] == 0
    assert idle_api.get("/jobs", params={"tags": "listing", "pending": "true"}).json()["count"] == 5
    assert (
        idle_api.get("/jobs", params={"tags": "listing", "pending": "false"}).json()["count"] == 0
    )
    assert (
        idle_api.get("/jobs", params={"tags": "listing", "program": "estimator"}).json()["count"]
        == 0
    )
    assert (
        idle_api.get("/jobs", params={"tags": "listing", "backend": "fake_manila"}).json()["count"]
        == 5
    )
    with_params = idle_api.get(
        "/jobs", params={"tags": "listing", "exclude_params": "false"}
    ).json()
    assert all("params" in j for j in with_params["jobs"])
    out_of_range = idle_api.get("/jobs", params={"tags": "listing", "limit": 5000}).json()
    assert out_of_range["limit"] == 200 and out_of_range["count"] == 5
    assert_envelope(
        idle_api.get("/jobs", params={"created_after": "yesterday"}), 400, "1002", "created_after"
    )
    assert_envelope(idle_api.get("/jobs", params={"pending": "maybe"}), 400, "1002", "pending")
    assert_envelope(idle_api.get("/jobs", params={"sort": "UP"}), 400, "1002", "sort")


def test_unknown_route_answers_in_the_envelope(api: httpx.Client) -> None:
    response = api.get("/no/such/route")
    assert response.status_code == 404 and response.json()["errors"]


def test_results_base64_payload_is_not_a_crash(api: httpx.Client) -> None:
    # A QPY payload that is valid base64 and zlib but not QPY must still be a 400.
    import zlib

    junk = base64.b64encode(zlib.compress(b"QISKIT" + b"\x00" * 40)).decode()
    body = sampler_body()
    body["params"]["pubs"] = [[{"__type__": "QuantumCircuit", "__value__": junk}]]
    response = api.post("/jobs", json=body)
    assert response.status_code == 400 and "params.pubs[0]" in response.text


def test_properties_honour_updated_before(api: httpx.Client) -> None:
    props = "/backends/ibm_fez/properties"
    later = api.get(props, params={"updated_before": "2026-01-01T00:00:00Z"})
    assert later.status_code == 200 and later.json()["backend_name"] == "ibm_fez"
    earlier = api.get(props, params={"updated_before": "2020-01-01T00:00:00Z"})
    assert_envelope(earlier, 404, "1009", "ibm_fez")
    bad = api.get(props, params={"updated_before": "last week"})
    assert_envelope(bad, 400, "1002", "updated_before")


def test_oversized_body_is_413_and_the_server_carries_on(tmp_path: Path) -> None:
    server = EmulatorServer(tmp_path, "--max-request-mb", "1", workers=0).start()
    try:
        with httpx.Client(base_url=server.url + "/api/v1", headers=bearer(server.url)) as client:
            padding = "x" * (2 * 1024 * 1024)
            big = client.post("/jobs", json={**sampler_body(), "padding": padding})
            assert_envelope(big, 413, "1413")
            assert client.post("/jobs", json=sampler_body()).status_code == 200
    finally:
        server.stop()
