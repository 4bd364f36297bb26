"""Runtime REST API in-process: status codes, envelopes, validation, tenancy, tags, listings.

Moved from tests/integration/test_runtime_http.py: none of these needs a worker, a process
boundary or a real socket, so they run on `create_app` behind TestClient. Jobs stay Queued.
"""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from tests.conftest import CRN_A, CRN_B
from tests.inprocess import bearer
from tests.integration.test_runtime_http import (
    assert_envelope,
    count_jobs,
    fixture_body,
    sampler_body,
    submit,
)

# -- IAM, Global Search, Global Catalog -------------------------------------------------------


def test_iam_issues_a_jwt_with_integer_iat_and_exp(app_client: TestClient) -> None:
    response = app_client.post(
        "/iam/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": "k"},
    )
    body = response.json()
    assert response.status_code == 200 and body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert isinstance(claims["iat"], int) and claims["exp"] - claims["iat"] == 3600


def test_iam_rejects_other_grant_types(app_client: TestClient) -> None:
    response = app_client.post("/iam/identity/token", data={"grant_type": "password"})
    assert response.status_code == 400 and response.json()["errorCode"] == "BXNIM0109E"


def test_search_lists_instances_and_catalog_their_plan(tenant_client: TestClient) -> None:
    headers = bearer(tenant_client)
    found = tenant_client.post(
        "/globalsearch/v3/resources/search?limit=100",
        json={"query": "service_name:quantum-computing"},
        headers=headers,
    ).json()
    assert [i["crn"] for i in found["items"]] == [CRN_A, CRN_B]
    assert found["search_cursor"] is None
    assert all(i["doc"]["extensions"] for i in found["items"])
    plan = tenant_client.get(f"/globalcatalog/{found['items'][0]['service_plan_unique_id']}")
    assert plan.json()["metadata"]["pricing"]["type"] == "free"
    assert tenant_client.get("/globalcatalog/nope").status_code == 404


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
def test_missing_or_foreign_token_is_401(app_client: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = app_client.get("/api/v1/backends", headers=headers)
    assert_envelope(response, 401, "1201")


def test_unknown_service_crn_is_403(runtime: TestClient) -> None:
    response = runtime.get("/backends", headers={"Service-CRN": "crn:v1:unknown::"})
    assert_envelope(response, 403, "1200", "crn:v1:unknown::")


def test_any_prefix_before_api_v1(app_client: TestClient) -> None:
    headers = bearer(app_client)
    for prefix in ("", "/experimental", "/some/gateway"):
        response = app_client.get(f"{prefix}/api/v1/backends", headers=headers)
        assert response.status_code == 200, prefix


def test_versions_need_no_token(app_client: TestClient) -> None:
    versions = app_client.get("/api/v1/versions").json()["versions"]
    assert {"version": "2026-04-15", "status": "current"} in versions  # the reference's word


@pytest.mark.parametrize(
    ("asked", "served"),
    [
        ("2026-04-15", "2026-04-15"),
        ("2027-01-01", "2026-04-15"),
        ("2020-05-05", "2024-01-01"),
        ("2026-03-10", "2026-02-15"),
        ("not-a-date", "2026-04-15"),
    ],
)
def test_any_ibm_api_version_is_served_as_the_one_in_force_then(
    runtime: TestClient, asked: str, served: str
) -> None:
    response = runtime.get("/backends", headers={"IBM-API-Version": asked})
    assert response.status_code == 200 and response.headers["IBM-API-Version"] == served
    error = runtime.get("/jobs/nope", headers={"IBM-API-Version": asked})
    assert error.status_code == 404 and error.headers["IBM-API-Version"] == served


# -- backends ------------------------------------------------------------------------------------


def test_backend_list_has_what_least_busy_reads(runtime: TestClient) -> None:
    devices = {
        d["name"]: d
        for d in runtime.get("/backends", params={"include_mocks": "True"}).json()["devices"]
    }
    assert {"ibm_brisbane", "ibm_fez", "fake_manila"} <= set(devices)
    assert devices["ibm_brisbane"]["qubits"] == 127 and devices["ibm_fez"]["qubits"] == 156
    assert devices["fake_manila"]["qubits"] == 5
    assert devices["ibm_brisbane"]["status"]["name"] == "online"
    assert isinstance(devices["ibm_brisbane"]["queue_length"], int)
    assert devices["mock_fez"]["class"] == "mock"
    plain = {d["name"] for d in runtime.get("/backends").json()["devices"]}
    assert plain == set(devices) - {"mock_fez", "mock_brisbane", "mock_manila"}


def test_backend_documents(runtime: TestClient) -> None:
    conf = runtime.get("/backends/ibm_fez/configuration").json()
    assert conf["backend_name"] == "ibm_fez" and conf["n_qubits"] == 156 and conf["online_date"]
    assert conf["simulator"] is False
    props = runtime.get(
        "/backends/ibm_fez/properties", params={"updated_before": "2025-06-01T00:00:00Z"}
    )
    assert props.status_code == 200 and props.json()["qubits"]
    status = runtime.get("/backends/ibm_fez/status").json()
    assert status["state"] is True and status["status"] == "active" and "length_queue" in status


@pytest.mark.parametrize("suffix", ["configuration", "properties", "status", "defaults"])
def test_unknown_backend_is_404(runtime: TestClient, suffix: str) -> None:
    assert_envelope(runtime.get(f"/backends/ibm_nowhere/{suffix}"), 404, "1007", "ibm_nowhere")


def _as(version: str) -> dict[str, str]:
    return {"IBM-API-Version": version}


def test_a_dated_openapi_document_per_api_version(app_client: TestClient) -> None:
    dated = app_client.get("/api/openapi-2025-05-01.json")
    assert dated.status_code == 200 and dated.json()["info"]["version"] == "2025-05-01"
    assert "/api/v1/jobs/{job_id}/transpiled_circuits" in dated.json()["paths"]
    current = app_client.get("/api/openapi.json").json()
    assert current["info"]["version"] == "2026-04-15"
    assert "/api/v1/jobs/{job_id}/transpiled_circuits" not in current["paths"]
    assert app_client.get("/api/openapi-2099-01-01.json").status_code == 404


def test_the_backends_list_is_names_before_2025_and_objects_since(runtime: TestClient) -> None:
    names = runtime.get("/backends", headers=_as("2024-01-01")).json()["devices"]
    assert "fake_manila" in names and all(isinstance(n, str) for n in names)
    objects = runtime.get("/backends", headers=_as("2025-01-01")).json()["devices"]
    assert {d["name"] for d in objects} == set(names) and all("status" in d for d in objects)


def test_versions_are_strings_until_the_2026_02_15_schemas_then_objects(
    runtime: TestClient,
) -> None:
    old = runtime.get("/versions", headers=_as("2026-02-01")).json()["versions"]
    assert old[0] == "2024-01-01" and old[-1] == "2026-04-15"
    new = runtime.get("/versions").json()["versions"]  # no header: the current version
    assert [v["version"] for v in new] == old
    assert new[-1]["status"] == "current" and new[2]["sunset_date"] == "2027-01-01"


def test_the_same_job_in_2025_05_01_and_2026_04_15_shapes(runtime: TestClient) -> None:
    job_id = submit(runtime, sampler_body(tags=["versioned"]))
    old_list = runtime.get("/jobs", params={"tags": "versioned"}, headers=_as("2025-05-01"))
    (old_job,) = old_list.json()["jobs"]
    assert {"seconds", "quantum_seconds"} <= set(old_job["usage"]) and "bss" in old_job
    for params in ({"tags": "versioned"}, {"tags": "versioned", "exclude_params": "true"}):
        (new_job,) = runtime.get("/jobs", params=params, headers=_as("2026-04-15")).json()["jobs"]
        assert "bss" not in new_job and "seconds" not in new_job["usage"]
    old = runtime.get(f"/jobs/{job_id}/metrics", headers=_as("2025-05-01")).json()
    assert "bss" in old and "circuits_execution_time_ns" in old["usage"]
    assert "circuits_execution_time_ns" not in old
    new = runtime.get(f"/jobs/{job_id}/metrics", headers=_as("2026-04-15")).json()
    assert "bss" not in new and "seconds" not in new["usage"]
    assert "circuits_execution_time_ns" in new and "circuits_execution_time_ns" not in new["usage"]
    between = runtime.get(f"/jobs/{job_id}/metrics", headers=_as("2026-03-15")).json()
    assert "bss" not in between and "circuits_execution_time_ns" in between["usage"]
    # A job's own view keeps usage.seconds in every version (qrmi 0.23 requires it); its
    # list entry drops it from 2026-03-15, cached or not.
    assert "seconds" in runtime.get(f"/jobs/{job_id}", headers=_as("2026-04-15")).json()["usage"]
    assert "seconds" in runtime.get(f"/jobs/{job_id}").json()["usage"]
    # Resource units (usage.value) from 2026-04-15, on the job, its metrics and its list entry.
    assert "value" in new["usage"] and "value" not in between["usage"]
    assert "value" in runtime.get(f"/jobs/{job_id}", headers=_as("2026-04-15")).json()["usage"]
    assert "value" not in runtime.get(f"/jobs/{job_id}", headers=_as("2025-05-01")).json()["usage"]
    for version, present in (("2026-03-15", False), ("2026-04-15", True)):
        params = {"tags": "versioned", "exclude_params": "true"}
        (listed,) = runtime.get("/jobs", params=params, headers=_as(version)).json()["jobs"]
        assert ("value" in listed["usage"]) is present
    # transpiled_circuits: served until 2026-02-01 (empty: nothing is transpiled), then gone.
    old_circuits = runtime.get(f"/jobs/{job_id}/transpiled_circuits", headers=_as("2025-05-01"))
    assert old_circuits.status_code == 200 and old_circuits.text == ""
    gone = runtime.get(f"/jobs/{job_id}/transpiled_circuits", headers=_as("2026-02-01"))
    assert gone.status_code == 404 and gone.json()["errors"]


def test_the_instance_as_clients_up_to_0_31_read_it(tenant_runtime: TestClient) -> None:
    instance = tenant_runtime.get("/instance")
    assert instance.status_code == 200
    body = instance.json()
    assert body["crn"] == CRN_A and body["qctrl_enabled"] is False and body["plan"]


def test_instance_usage(tenant_runtime: TestClient) -> None:
    usage = tenant_runtime.get("/instances/usage").json()
    assert usage["instance_id"] == CRN_A and isinstance(usage["usage_consumed_seconds"], float)
    # No limit configured: IBM leaves the limit fields undefined rather than false.
    assert "usage_limit_reached" not in usage and "usage_limit_seconds" not in usage
    period = usage["usage_period"]
    assert period["start_time"][8:10] == "01" and period["start_time"] < period["end_time"]


def test_instance_configuration_without_a_limit_and_bad_puts(tenant_runtime: TestClient) -> None:
    assert tenant_runtime.get("/instances/configuration").json() == {}
    for body in ({}, {"instance_limit": 0}, {"instance_limit": "60"}, [60]):
        refused = tenant_runtime.put("/instances/configuration", json=body)
        assert refused.status_code == 400, body
        assert "instance_limit" in refused.json()["errors"][0]["message"]
    assert tenant_runtime.get("/instances/configuration").json() == {}


def test_the_account_of_the_callers_instance_lists_its_plan(tenant_runtime: TestClient) -> None:
    account = CRN_A.split(":")[6].removeprefix("a/")
    plans = tenant_runtime.get(f"/accounts/{account}").json()["plans"]
    assert plans and all(p["plan_id"].startswith("emulator-plan-") for p in plans)
    plan = plans[0]
    assert "ibm_brisbane" in plan["backends"]
    assert not any(b.startswith("mock_") for b in plan["backends"])
    assert plan["max_ttl"] == 28800 and plan["subscription_id"]
    only = tenant_runtime.get(f"/accounts/{account}", params={"plan_id": "no-such-plan"})
    assert only.json() == {"plans": []}
    # An account the server has no instance in: the default configuration, as IBM documents.
    assert tenant_runtime.get("/accounts/someone-else").json() == {"plans": []}
    bad = tenant_runtime.get("/accounts/not!an!id")
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "1002"


def test_interim_results_are_empty_text_for_a_job_and_404_without_one(
    runtime: TestClient,
) -> None:
    job_id = runtime.post("/jobs", json=fixture_body("post_jobs_sampler_body.json")).json()["id"]
    interim = runtime.get(f"/jobs/{job_id}/interim_results")
    assert interim.status_code == 200 and interim.text == ""
    assert interim.headers["content-type"].startswith("text/plain")
    assert runtime.get("/jobs/nope/interim_results").status_code == 404


# -- POST /jobs validation: 4xx with the field, nothing stored -----------------------------------


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
    runtime: TestClient, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = count_jobs(runtime)
    assert_envelope(runtime.post("/jobs", json=body), status, code, field)
    assert count_jobs(runtime) == before


def test_malformed_json_body_is_400(runtime: TestClient) -> None:
    response = runtime.post(
        "/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_envelope(response, 400, "1002", "body")


def test_circuit_wider_than_backend_is_400(runtime: TestClient) -> None:
    body = fixture_body(
        "post_jobs_executor_sampler_body.json"
    )  # an ISA circuit for 156-qubit ibm_fez
    body["backend"] = "fake_manila"
    before = count_jobs(runtime)
    response = runtime.post("/jobs", json=body)
    assert response.status_code == 400, response.text
    assert "fake_manila" in response.json()["errors"][0]["message"]
    assert count_jobs(runtime) == before


# -- job lifecycle without a worker: Queued jobs, unknown jobs, tags, listings ------------------


def test_queued_job_cancel_and_delete_rules(runtime: TestClient) -> None:
    job_id = submit(runtime)
    assert runtime.get(f"/jobs/{job_id}").json()["state"]["status"] == "Queued"
    assert runtime.get(f"/jobs/{job_id}/results").status_code == 204
    assert_envelope(runtime.delete(f"/jobs/{job_id}"), 409, "1337", job_id)
    assert runtime.post(f"/jobs/{job_id}/cancel").status_code == 204
    job = runtime.get(f"/jobs/{job_id}").json()
    assert job["state"]["status"] == "Cancelled" and job["ended"]
    assert_envelope(runtime.post(f"/jobs/{job_id}/cancel"), 409, "1306")
    assert runtime.get(f"/jobs/{job_id}/results").status_code == 200
    assert runtime.delete(f"/jobs/{job_id}").status_code == 204


@pytest.mark.parametrize(
    "method", ["get", "cancel", "delete", "results", "logs", "metrics", "tags"]
)
def test_unknown_job_is_404_everywhere(runtime: TestClient, method: str) -> None:
    calls = {
        "get": lambda: runtime.get("/jobs/nosuchjob"),
        "cancel": lambda: runtime.post("/jobs/nosuchjob/cancel"),
        "delete": lambda: runtime.delete("/jobs/nosuchjob"),
        "results": lambda: runtime.get("/jobs/nosuchjob/results"),
        "logs": lambda: runtime.get("/jobs/nosuchjob/logs"),
        "metrics": lambda: runtime.get("/jobs/nosuchjob/metrics"),
        "tags": lambda: runtime.put("/jobs/nosuchjob/tags", json={"tags": []}),
    }
    assert_envelope(calls[method](), 404, "1291", "nosuchjob")


def test_tags_replace_search_and_filter(runtime: TestClient) -> None:
    job_id = submit(runtime, sampler_body(tags=["alpha-run"]))
    response = runtime.put(f"/jobs/{job_id}/tags", json={"tags": ["Blue-Team", "run-42"]})
    assert response.status_code == 204 and response.content == b""
    assert sorted(runtime.get(f"/jobs/{job_id}").json()["tags"]) == ["Blue-Team", "run-42"]
    assert runtime.get("/tags", params={"type": "job", "search": "blue"}).json() == {
        "tags": ["Blue-Team"]
    }
    listed = runtime.get("/jobs", params=[("tags", "Blue-Team"), ("tags", "run-42")]).json()
    assert [j["id"] for j in listed["jobs"]] == [job_id] and listed["count"] == 1
    assert_envelope(runtime.put(f"/jobs/{job_id}/tags", json={"tags": ["x"] * 9}), 400, "1204")
    assert_envelope(runtime.put(f"/jobs/{job_id}/tags", json={"labels": []}), 400, "1002", "tags")
    assert_envelope(
        runtime.get("/tags", params={"type": "job", "search": "ab"}), 400, "1002", "search"
    )
    assert_envelope(
        runtime.get("/tags", params={"type": "session", "search": "abc"}), 400, "1002", "type"
    )


def test_list_filters_sort_and_exact_count(runtime: TestClient) -> None:
    ids = [submit(runtime, sampler_body(tags=["listing"])) for _ in range(5)]
    listed = runtime.get("/jobs", params={"tags": "listing", "limit": 2, "offset": 1}).json()
    assert listed["count"] == 5 and [j["id"] for j in listed["jobs"]] == ids[::-1][1:3]
    ascending = runtime.get("/jobs", params={"tags": "listing", "sort": "ASC"}).json()["jobs"]
    assert [j["id"] for j in ascending] == ids
    first = ascending[0]["created"]
    after = runtime.get("/jobs", params={"tags": "listing", "created_after": first}).json()
    assert after["count"] == 5
    before = runtime.get(
        "/jobs", params={"tags": "listing", "created_before": "2000-01-01T00:00:00Z"}
    )
    assert before.json()["count"] == 0
    assert runtime.get("/jobs", params={"tags": "listing", "pending": "true"}).json()["count"] == 5
    assert runtime.get("/jobs", params={"tags": "listing", "pending": "false"}).json()["count"] == 0
    assert (
        runtime.get("/jobs", params={"tags": "listing", "program": "estimator"}).json()["count"]
        == 0
    )
    assert (
        runtime.get("/jobs", params={"tags": "listing", "backend": "fake_manila"}).json()["count"]
        == 5
    )
    with_params = runtime.get("/jobs", params={"tags": "listing", "exclude_params": "false"}).json()
    assert all("params" in j for j in with_params["jobs"])
    out_of_range = runtime.get("/jobs", params={"tags": "listing", "limit": 5000}).json()
    assert out_of_range["limit"] == 200 and out_of_range["count"] == 5
    assert_envelope(
        runtime.get("/jobs", params={"created_after": "yesterday"}), 400, "1002", "created_after"
    )
    assert_envelope(runtime.get("/jobs", params={"pending": "maybe"}), 400, "1002", "pending")
    assert_envelope(runtime.get("/jobs", params={"sort": "UP"}), 400, "1002", "sort")


def test_unknown_route_answers_in_the_envelope(runtime: TestClient) -> None:
    response = runtime.get("/no/such/route")
    assert response.status_code == 404 and response.json()["errors"]


def test_a_line_break_in_a_path_parameter_is_answered_in_the_envelope(
    runtime: TestClient,
) -> None:
    """Found by the OpenAPI fuzzer: a mount's `.*` stops at a newline, so the request fell
    through to Starlette's plain-text 404."""
    for path in ("/backends/a%0Ab/configuration", "/jobs/x%0D%0Ay"):
        response = runtime.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["errors"][0]["message"]


def test_results_base64_payload_is_not_a_crash(runtime: TestClient) -> None:
    # A QPY payload that is valid base64 and zlib but not QPY must still be a 400.
    import zlib

    junk = base64.b64encode(zlib.compress(b"QISKIT" + b"\x00" * 40)).decode()
    body = sampler_body()
    body["params"]["pubs"] = [[{"__type__": "QuantumCircuit", "__value__": junk}]]
    response = runtime.post("/jobs", json=body)
    assert response.status_code == 400 and "params.pubs[0]" in response.text


def test_properties_honour_updated_before(runtime: TestClient) -> None:
    props = "/backends/ibm_fez/properties"
    later = runtime.get(props, params={"updated_before": "2026-01-01T00:00:00Z"})
    assert later.status_code == 200 and later.json()["backend_name"] == "ibm_fez"
    earlier = runtime.get(props, params={"updated_before": "2020-01-01T00:00:00Z"})
    assert_envelope(earlier, 404, "1009", "ibm_fez")
    bad = runtime.get(props, params={"updated_before": "last week"})
    assert_envelope(bad, 400, "1002", "updated_before")


# -- workloads ---------------------------------------------------------------------------------


def test_workloads_pages_with_hrefs_and_refuses_a_forged_cursor(runtime: TestClient) -> None:
    made = [submit(runtime, sampler_body(tags=["wl-page"])) for _ in range(3)]
    first = runtime.get("/workloads", params={"tags": "wl-page", "limit": 2}).json()
    assert [w["id"] for w in first["workloads"]] == made[:2]
    assert first["total_count"] == 3 and first["limit"] == 2 and "previous" not in first
    workload = first["workloads"][0]
    assert workload["mode"] == "job" and workload["status"] == "pending"
    assert workload["tags"] == ["wl-page"] and workload["accepting_jobs"] is None
    href = first["next"]["href"]
    assert "tags=wl-page" in href and "next=" in href
    second = runtime.get(href.split("/api/v1", 1)[1]).json()
    assert [w["id"] for w in second["workloads"]] == made[2:]
    assert "next" not in second and "previous" in second
    newest = runtime.get("/workloads", params={"tags": "wl-page", "sort": "-createdAt"})
    assert [w["id"] for w in newest.json()["workloads"]] == made[::-1]
    assert_envelope(runtime.get("/workloads", params={"next": "forged"}), 400, "1002", "next")
    assert_envelope(runtime.get("/workloads", params={"status": "lost"}), 400, "1002", "status")
    assert_envelope(runtime.get("/workloads", params={"limit": 51}), 400, "1002", "limit")
