"""Runtime REST API at the HTTP level, against a server: jobs that run, and the server itself.

Status codes, envelopes and fields that need no worker are in tests/inprocess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import CRN_B, bearer
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


def count_jobs(api: httpx.Client) -> int:
    return int(api.get("/jobs", params={"limit": 1}).json()["count"])


# Envelopes, validation, tenancy, tags and listings that need no worker run in-process:
# tests/inprocess/test_runtime_envelopes.py. What is left here needs a job to finish or a server.

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
