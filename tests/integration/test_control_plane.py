"""The control plane (`/_emulator`), each feature seen through the unmodified client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from qiskit_ibm_runtime import SamplerV2
from qiskit_ibm_runtime.exceptions import (
    IBMRuntimeError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
)

from tests.circuits import bell, isa
from tests.conftest import CRN_A, INSTANCES, bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorServer, service_for, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def control_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("control"), "--instances", INSTANCES, workers=1
    ).start()
    yield server
    server.stop()


@pytest.fixture()
def admin(control_server: EmulatorServer) -> Iterator[httpx.Client]:
    """The control-plane client; every test starts from a full reset."""
    with httpx.Client(base_url=control_server.url + "/_emulator", timeout=30) as client:
        assert client.post("/reset").status_code == 200
        yield client


@pytest.fixture()
def service(control_server: EmulatorServer, admin: httpx.Client) -> Iterator[Any]:
    with service_for(control_server) as svc:
        yield svc


def run_bell(service: Any, backend_name: str = "fake_manila") -> Any:
    backend = service.backend(backend_name)
    return SamplerV2(mode=backend).run([isa(backend, bell())])


# -- reset and inspection ---------------------------------------------------------------------


def test_reset_empties_what_the_client_sees(service: Any, admin: httpx.Client) -> None:
    run_bell(service).result()
    assert len(service.jobs()) == 1
    listed = admin.get("/jobs").json()["jobs"]
    assert len(listed) == 1 and listed[0]["state"] == "completed"
    assert listed[0]["instance"] == CRN_A and listed[0]["program_id"] == "sampler"
    reset = admin.post("/reset")
    assert reset.status_code == 200
    assert service.jobs() == []


def test_reset_of_one_instance_keeps_the_others(
    control_server: EmulatorServer, admin: httpx.Client
) -> None:
    headers = bearer(control_server.url)
    with httpx.Client(base_url=control_server.url + "/api/v1", headers=headers) as api:
        mine = api.post("/jobs", json=sampler_body()).json()["id"]
        theirs = api.post(
            "/jobs", json=sampler_body(), headers={"Service-CRN": INSTANCES.split(",")[1][7:]}
        ).json()["id"]
    assert admin.post("/reset", json={"instance": "team-a"}).json()["reset"] == CRN_A
    ids = {j["id"] for j in admin.get("/jobs").json()["jobs"]}
    assert mine not in ids and theirs in ids


def test_info_and_job_detail(service: Any, admin: httpx.Client) -> None:
    info = admin.get("/info").json()
    assert info["emulator"] is True and info["config"]["workers"]["env"] == "EMULATOR_WORKERS"
    assert {b["name"] for b in info["backends"]} >= {"ibm_fez", "fake_manila"}
    job = run_bell(service)
    job.result()
    detail = admin.get(f"/jobs/{job.job_id()}").json()
    assert detail["params_summary"]["pubs"] == 1
    counts = detail["result_summary"]["pubs"][0]["registers"]["meas"]["counts"]
    assert set(counts) <= {"00", "01", "10", "11"} and sum(counts.values()) > 0
    assert any("completed" in line["message"].lower() for line in detail["log"])
    assert admin.get("/jobs/nope").status_code == 404


def test_request_journal(service: Any, admin: httpx.Client) -> None:
    admin.delete("/requests")
    run_bell(service).result()
    entries = admin.get("/requests", params={"api": "runtime"}).json()["requests"]
    posts = [e for e in entries if e["method"] == "POST" and e["path"].endswith("/jobs")]
    assert len(posts) == 1 and posts[0]["status"] == 200 and posts[0]["instance"] == CRN_A
    assert all(not e["path"].startswith("/_emulator") for e in entries)


def test_openapi_describes_every_admin_route(admin: httpx.Client) -> None:
    from emulator.api.admin.routes import routes

    document = admin.get("/openapi.json").json()
    for route in routes:
        path = "/_emulator" + route.path  # type: ignore[attr-defined]
        methods = {m.lower() for m in route.methods or ()} - {"head"}  # type: ignore[attr-defined]
        assert path in document["paths"], path
        assert methods <= set(document["paths"][path]), (path, methods)


def test_bad_control_input_is_a_400_naming_the_field(admin: httpx.Client) -> None:
    cases = [
        ("PUT", "/progression", {"mode": "sometimes"}, "mode"),
        ("PUT", "/progression", {"mode": "manual", "backend": "ibm_nowhere"}, None),
        ("POST", "/outcomes", {"state": "exploded"}, "state"),
        ("POST", "/outcomes", {"state": "failed", "times": 0}, "times"),
        ("POST", "/faults", {"action": "respond"}, "status"),
        ("POST", "/faults", {"status": 200}, "status"),
        ("POST", "/faults", {"status": 503, "probability": 2}, "probability"),
        ("PUT", "/backends/ibm_fez/state", {"state": "sleepy"}, "state"),
        ("POST", "/reservations", {"backend": "ibm_fez"}, "start"),
        ("POST", "/seed", {"seed": "x"}, "seed"),
    ]
    for method, path, body, field in cases:
        response = admin.request(method, path, json=body)
        if field is None:
            assert response.status_code == 404, (path, body, response.text)
        else:
            assert response.status_code == 400, (path, body, response.text)
            assert response.json()["error"]["field"] == field, (path, body, response.text)
    json_type = {"Content-Type": "application/json"}
    assert admin.post("/outcomes", content=b"{not json", headers=json_type).status_code == 400
    assert admin.get("/info").status_code == 200  # nothing broke


# -- progression --------------------------------------------------------------------------------


def test_held_job_can_be_cancelled(service: Any, admin: httpx.Client) -> None:
    assert admin.put("/progression", json={"mode": "manual"}).status_code == 200
    job = run_bell(service)
    assert job.status() == "QUEUED"
    assert admin.get(f"/jobs/{job.job_id()}").json()["held"] is True
    job.cancel()
    assert job.status() == "CANCELLED"


def test_held_job_runs_once_released(service: Any, admin: httpx.Client) -> None:
    admin.put("/progression", json={"mode": "manual", "backend": "fake_manila"})
    job = run_bell(service)
    assert job.status() == "QUEUED"
    released = admin.post(f"/jobs/{job.job_id()}/release").json()["released"]
    assert released == [job.job_id()]
    assert job.result()[0].data.meas.num_shots > 0


def test_manual_release_after_status_polls(service: Any, admin: httpx.Client) -> None:
    admin.put("/progression", json={"mode": "manual", "release_after_polls": 2})
    job = run_bell(service)
    assert job.status() == "QUEUED"  # poll 1: still held
    assert job.result()  # the client's own polls release and finish it


def test_timed_progression_shows_queued_running_done(service: Any, admin: httpx.Client) -> None:
    admin.put("/progression", json={"mode": "timed", "queue_seconds": 1, "run_seconds": 1})
    job = run_bell(service)
    seen = {job.status()}
    wait_until(lambda: seen.add(job.status()) or "DONE" in seen, timeout=30, interval=0.1)
    assert {"QUEUED", "RUNNING", "DONE"} <= seen
    stamps = job.metrics()["timestamps"]
    created, running, finished = (
        datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
        for k in ("created", "running", "finished")
    )
    assert running - created >= timedelta(seconds=1) and finished - running >= timedelta(seconds=1)


# -- outcomes -----------------------------------------------------------------------------------


def test_injected_1305_is_a_max_timeout_error(service: Any, admin: httpx.Client) -> None:
    rule = {"state": "cancelled", "reason_code": 1305, "reason": "Ran too long", "times": 1}
    assert admin.post("/outcomes", json=rule).status_code == 201
    with pytest.raises(RuntimeJobMaxTimeoutError):
        run_bell(service).result()
    assert admin.get("/outcomes").json()["outcomes"] == []  # used up
    assert run_bell(service).result()  # the next job runs normally


def test_injected_failure_matches_only_its_backend(service: Any, admin: httpx.Client) -> None:
    admin.post(
        "/outcomes",
        json={
            "state": "failed",
            "reason": "Injected calibration error",
            "reason_code": 1010,
            "backend": "ibm_fez",
        },
    )
    assert run_bell(service, "fake_manila").result()  # another backend: not matched
    with pytest.raises(RuntimeJobFailureError, match="Injected calibration error"):
        run_bell(service, "ibm_fez").result()


# -- HTTP faults -------------------------------------------------------------------------------


def test_two_503_on_post_jobs_are_retried_by_the_client(service: Any, admin: httpx.Client) -> None:
    rule = {"method": "POST", "path": "*/jobs", "api": "runtime", "status": 503, "times": 2}
    assert admin.post("/faults", json=rule).status_code == 201
    admin.delete("/requests")
    assert run_bell(service).result()
    posts = [
        e
        for e in admin.get("/requests").json()["requests"]
        if e["method"] == "POST" and e["path"].endswith("/jobs")
    ]
    assert [e["status"] for e in posts] == [503, 503, 200]
    assert [bool(e["fault"]) for e in posts] == [True, True, False]
    assert admin.get("/faults").json()["faults"] == []


def test_lost_response_makes_the_job_exist_twice(service: Any, admin: httpx.Client) -> None:
    rule = {
        "method": "POST",
        "path": "*/jobs",
        "action": "lost_response",
        "status": 502,
        "times": 1,
    }
    admin.post("/faults", json=rule)
    assert run_bell(service).result()
    assert len(service.jobs()) == 2


def test_control_plane_is_never_faulted(admin: httpx.Client) -> None:
    admin.post("/faults", json={"path": "*", "status": 500})
    assert admin.get("/info").status_code == 200
    admin.delete("/faults")


def test_fault_rules_persist_across_restarts(tmp_path: Any) -> None:
    server = EmulatorServer(tmp_path, workers=0).start()
    try:
        rule = {"method": "GET", "path": "*/backends", "status": 503, "retry_after": 7}
        httpx.post(server.url + "/_emulator/faults", json=rule)
    finally:
        server.stop()
    server.start()
    try:
        rules = httpx.get(server.url + "/_emulator/faults").json()["faults"]
        assert len(rules) == 1 and rules[0]["retry_after"] == 7
        answer = httpx.get(server.url + "/api/v1/backends", headers=bearer(server.url))
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "7"
        assert answer.json()["errors"][0]["code"] == "503"  # the Runtime envelope
    finally:
        server.stop()


# -- backends, reservations, seed ---------------------------------------------------------------


def test_paused_backend_refuses_jobs_on_both_apis(
    control_server: EmulatorServer, service: Any, admin: httpx.Client
) -> None:
    body = {"state": "paused", "message": "calibrating"}
    assert admin.put("/backends/ibm_fez/state", json=body).status_code == 200
    status = service.backend("ibm_fez").status()
    assert status.operational is False and status.status_msg == "paused"
    with pytest.raises(IBMRuntimeError, match="1004"):
        run_bell(service, "ibm_fez")
    headers = bearer(control_server.url)
    da = httpx.get(control_server.url + "/v1/backends/ibm_fez", headers=headers).json()
    assert da["status"] == "paused" and "locked" not in da
    admin.put("/backends/ibm_fez/state", json={"state": "online"})
    assert run_bell(service, "ibm_fez").result()


def test_reservations_through_the_control_plane(
    control_server: EmulatorServer, admin: httpx.Client
) -> None:
    now = datetime.now(UTC)
    made = admin.post(
        "/reservations",
        json={
            "backend": "ibm_fez",
            "start": (now - timedelta(minutes=1)).isoformat(),
            "end": (now + timedelta(minutes=1)).isoformat(),
            "instance": "team-b",
        },
    )
    assert made.status_code == 201
    headers = bearer(control_server.url)
    backend = httpx.get(control_server.url + "/v1/backends/ibm_fez", headers=headers).json()
    assert backend["locked"] is True  # team-a does not hold the reservation
    assert admin.delete(f"/reservations/{made.json()['id']}").status_code == 204
    backend = httpx.get(control_server.url + "/v1/backends/ibm_fez", headers=headers).json()
    assert backend["locked"] is False


def test_seed_makes_ids_and_counts_repeatable(service: Any, admin: httpx.Client) -> None:
    def seeded_run() -> tuple[str, dict[str, int]]:
        admin.post("/reset")
        admin.post("/seed", json={"seed": 1234})
        job = run_bell(service)
        return job.job_id(), job.result()[0].data.meas.get_counts()

    first, second = seeded_run(), seeded_run()
    assert first == second
    admin.post("/reset")
    assert run_bell(service).job_id() != first[0]  # unseeded again after a reset


def test_dropped_connection(control_server: EmulatorServer, admin: httpx.Client) -> None:
    admin.post(
        "/faults", json={"method": "GET", "path": "*/versions", "action": "drop", "times": 1}
    )
    with pytest.raises(httpx.TransportError):
        httpx.get(control_server.url + "/api/v1/versions")
    assert httpx.get(control_server.url + "/api/v1/versions").status_code == 200
    entries = admin.get("/requests").json()["requests"]
    assert entries[-2]["fault"]["action"] == "drop" and entries[-1]["fault"] is None


def test_offline_and_reserved_backends_refuse_direct_access_jobs(
    control_server: EmulatorServer, admin: httpx.Client
) -> None:
    from tests.integration.test_direct_access_http import job_body
    from tests.objects import object_server

    headers = bearer(control_server.url)
    with (
        object_server() as objects,
        httpx.Client(base_url=control_server.url, headers=headers, timeout=30) as da,
    ):
        admin.put("/backends/ibm_fez/state", json={"state": "offline"})
        refused = da.post("/v1/jobs", json=job_body(objects, "ibm_fez"))
        assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == "1004"
        admin.put("/backends/ibm_fez/state", json={"state": "online"})
        now = datetime.now(UTC)
        admin.post(
            "/reservations",
            json={
                "backend": "ibm_fez",
                "start": (now - timedelta(minutes=1)).isoformat(),
                "end": (now + timedelta(minutes=5)).isoformat(),
                "instance": "team-b",
            },
        )
        reserved = da.post("/v1/jobs", json=job_body(objects, "ibm_fez"))
        assert reserved.status_code == 423 and reserved.json()["errors"][0]["code"] == "1233"


def test_delayed_success(service: Any, admin: httpx.Client) -> None:
    admin.post("/outcomes", json={"state": "completed", "delay_seconds": 1.5})
    job = run_bell(service)
    assert job.result()[0].data.meas.num_shots > 0
    detail = admin.get(f"/jobs/{job.job_id()}").json()
    assert detail["duration_seconds"] >= 1.5


def test_latency_and_probability(control_server: EmulatorServer, admin: httpx.Client) -> None:
    admin.post("/faults", json={"path": "*/versions", "latency_ms": 400})
    admin.post("/faults", json={"path": "*/backends", "status": 500, "probability": 0.0})
    versions = httpx.get(control_server.url + "/api/v1/versions")
    assert versions.status_code == 200 and versions.elapsed.total_seconds() >= 0.4
    headers = bearer(control_server.url)
    for _ in range(5):  # probability 0: never fires
        assert (
            httpx.get(control_server.url + "/api/v1/backends", headers=headers).status_code == 200
        )
    admin.delete("/faults")
    admin.post("/faults", json={"path": "*/backends", "status": 500, "probability": 1.0})
    assert httpx.get(control_server.url + "/api/v1/backends", headers=headers).status_code == 500
    journal = admin.get("/requests").json()["requests"]
    assert journal[0]["duration_ms"] >= 400 and journal[0]["fault"]["action"] == "delay"


def test_reset_stops_a_running_simulation(service: Any, admin: httpx.Client) -> None:
    from tests.circuits import long_running_circuit

    backend = service.backend("ibm_fez")
    long_job = SamplerV2(mode=backend).run([isa(backend, long_running_circuit())])
    wait_until(
        lambda: admin.get(f"/jobs/{long_job.job_id()}").json()["state"] == "running", timeout=60
    )
    assert admin.post("/reset").json()["stopped_jobs"] == [long_job.job_id()]
    # The only worker is free again at once: a small job completes.
    assert run_bell(service).result()


def test_back_to_immediate_releases_held_jobs(service: Any, admin: httpx.Client) -> None:
    admin.put("/progression", json={"mode": "manual"})
    job = run_bell(service)
    assert job.status() == "QUEUED"
    admin.put("/progression", json={"mode": "immediate"})
    assert job.result()


def test_admin_token_guards_changes(tmp_path: Any) -> None:
    from tests.support import EmulatorControl

    server = EmulatorServer(tmp_path, "--admin-token", "s3cret", workers=0).start()
    try:
        admin_url = server.url + "/_emulator"
        refused = httpx.post(admin_url + "/reset")
        assert refused.status_code == 401 and "admin token" in refused.json()["error"]["message"]
        wrong = httpx.post(admin_url + "/reset", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        info = httpx.get(admin_url + "/info", headers={"Authorization": "Bearer s3cret"}).json()
        assert info["config"]["admin_token"]["value"] == "(set)"
        assert httpx.get(admin_url + "/").status_code == 200  # the dashboard stays open
        control = EmulatorControl(server.url, admin_token="s3cret")
        assert control.reset()["reset"] == "all"
        control.hold_jobs()
        control.close()
    finally:
        server.stop()
