"""Direct Access API at the HTTP level, against a server: jobs that run, storage through
presigned URLs, timeouts, a slow body.

Status codes and envelopes that need no worker are in tests/inprocess.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder
from qiskit_ibm_runtime.fake_provider import FakeFez

from tests.circuits import long_running_circuit
from tests.conftest import INSTANCES, bearer
from tests.objects import ObjectServer, object_server
from tests.support import EmulatorServer, wait_until

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"
RESERVATIONS = ",".join(
    [
        # brisbane: reserved now, for team-b only
        "backend=ibm_brisbane;start=2000-01-01T00:00:00Z;end=2100-01-01T00:00:00Z;instance=team-b",
        # fez: reserved only in the future
        "backend=ibm_fez;start=2100-01-01T00:00:00Z;end=2100-01-02T00:00:00Z",
    ]
)


@pytest.fixture(scope="module")
def da_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("direct-access"),
        "--instances",
        INSTANCES,
        "--reservations",
        RESERVATIONS,
        "--request-read-timeout",
        "1",
        "--max-request-mb",
        "1",
        "--lanes-per-backend",
        "50",
        workers=1,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def da(da_server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=da_server.url, headers=bearer(da_server.url), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def objects() -> Iterator[ObjectServer]:
    with object_server() as server:
        yield server


def sampler_input(support_qiskit: bool = True) -> dict[str, Any]:
    params: dict[str, Any] = json.loads((FIXTURES / "post_jobs_sampler_body.json").read_text())[
        "params"
    ]
    params["options"] = {"simulator": {"seed_simulator": 11}}
    params["shots"] = 64
    params["support_qiskit"] = support_qiskit
    return params


def job_body(objects: ObjectServer, backend: str = "fake_manila", **changes: Any) -> dict[str, Any]:
    job_id = str(uuid.uuid4())
    body = {
        "id": job_id,
        "backend": backend,
        "program_id": "sampler",
        "timeout_secs": 120,
        "log_level": "info",
        "storage": objects.storage(job_id),
    }
    body.update(changes)
    return body


def submit(da: httpx.Client, objects: ObjectServer, params: Any = None, **changes: Any) -> str:
    body = job_body(objects, **changes)
    name = body["id"]
    payload = params if params is not None else sampler_input()
    text = payload if isinstance(payload, str) else json.dumps(payload, cls=RuntimeEncoder)
    objects.objects[f"/in/{name}"] = text.encode()
    response = da.post("/v1/jobs", json=body)
    assert response.status_code == 204, response.text
    assert response.content == b""
    return str(body["id"])


def final(da: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = da.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] != "Running" else None

    return wait_until(done, timeout=timeout)


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status and body["trace"] and body["correlation_id"]
    assert body["title"] == body["errors"][0]["message"]
    assert body["errors"][0]["code"] == code and body["errors"][0]["more_info"]
    for word in words:
        assert word in body["errors"][0]["message"], body


# Versions, auth, backends, reservations, lanes and the submit status codes that need no worker
# run in-process: tests/inprocess/test_direct_access_envelopes.py (with this server's settings).


# -- POST /v1/jobs status codes ------------------------------------------------------------------


def test_submit_runs_to_completion_with_results_logs_and_usage(
    da: httpx.Client, objects: ObjectServer
) -> None:
    job_id = submit(da, objects)
    job = final(da, job_id)
    assert job["status"] == "Completed" and job["program_id"] == "sampler"
    assert job["created_time"].endswith("Z") and job["end_time"] >= job["created_time"]
    assert job["usage"]["quantum_nanoseconds"] > 0
    assert job["storage"]["input"]["presigned_url"].startswith(objects.url)
    result = json.loads(objects.objects[f"/results/{job_id}"], cls=RuntimeDecoder)
    assert sum(result[0].data.meas.get_counts().values()) == 64
    logs = objects.objects[f"/logs/{job_id}"].decode()
    assert "INFO" in logs and f"Finished {job_id}" in logs


def test_plain_json_results_when_support_qiskit_is_false(
    da: httpx.Client, objects: ObjectServer
) -> None:
    job_id = submit(da, objects, sampler_input(support_qiskit=False))
    assert final(da, job_id)["status"] == "Completed"
    plain = json.loads(objects.objects[f"/results/{job_id}"])
    assert "__type__" not in json.dumps(plain)
    samples = plain["results"][0]["data"]["meas"]["samples"]
    assert len(samples) == 64 and all(s.startswith("0x") for s in samples)


def test_logs_follow_the_log_level(da: httpx.Client, objects: ObjectServer) -> None:
    job_id = submit(da, objects, log_level="error")
    assert final(da, job_id)["status"] == "Completed"
    assert objects.objects[f"/logs/{job_id}"] == b""  # nothing at error level for a success


def _length(response: bytes) -> int:
    head = response.split(b"\r\n\r\n", 1)[0].decode().lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


def test_slow_body_is_408(da_server: EmulatorServer) -> None:
    token = bearer(da_server.url)["Authorization"]
    with socket.create_connection(("127.0.0.1", da_server.port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: {token}\r\nContent-Length: 500\r\n\r\n" + '{"id": "slow'
            ).encode()
        )
        data = b""  # the rest of the body never comes: read the whole answer
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        answer = data.decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert '"code":"1408"' in answer.replace(" ", "")


# -- job endpoints ---------------------------------------------------------------------------------


def test_cancel_and_delete_status_codes(da: httpx.Client, objects: ObjectServer) -> None:
    job_id = submit(da, objects)
    final(da, job_id)
    assert_error(da.post(f"/v1/jobs/{job_id}/cancel"), 409, "1306", job_id)
    assert da.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert_error(da.get(f"/v1/jobs/{job_id}"), 404, "1291")
    assert_error(da.delete(f"/v1/jobs/{job_id}"), 404, "1291")
    assert_error(da.post(f"/v1/jobs/{job_id}/cancel"), 404, "1291")


def isa_long_job() -> str:
    circuit = generate_preset_pass_manager(backend=FakeFez(), optimization_level=1).run(
        long_running_circuit()
    )
    return json.dumps({"pubs": [[circuit, None, 1000]], "version": 2}, cls=RuntimeEncoder)


def test_running_job_cancel_delete_409_then_204(da: httpx.Client, objects: ObjectServer) -> None:
    job_id = submit(da, objects, isa_long_job(), backend="ibm_fez")
    assert da.get(f"/v1/jobs/{job_id}").json()["status"] == "Running"
    assert_error(da.delete(f"/v1/jobs/{job_id}"), 409, "1337", job_id)
    assert da.post(f"/v1/jobs/{job_id}/cancel").status_code == 204
    assert da.get(f"/v1/jobs/{job_id}").json()["status"] == "Cancelled"
    assert da.delete(f"/v1/jobs/{job_id}").status_code == 204


def worker_pids(server: EmulatorServer) -> set[int]:
    assert server.process is not None
    return {p.pid for p in psutil.Process(server.process.pid).children(recursive=True)}


def test_cancel_while_the_input_is_fetched_never_starts_the_simulation(
    da: httpx.Client, da_server: EmulatorServer, objects: ObjectServer
) -> None:
    da_server.wait_workers_ready()
    pids = worker_pids(da_server)
    objects.get_arrived.clear()
    objects.hold_gets = threading.Event()
    try:
        job_id = submit(da, objects, isa_long_job(), backend="ibm_fez")
        assert objects.get_arrived.wait(30)  # the worker is fetching the input
        assert da.post(f"/v1/jobs/{job_id}/cancel").status_code == 204
    finally:
        objects.hold_gets.set()
        objects.hold_gets = None
    assert da.get(f"/v1/jobs/{job_id}").json()["status"] == "Cancelled"
    # The only worker is free at once, not busy with the cancelled job's long simulation.
    quick = submit(da, objects)
    assert final(da, quick, timeout=30)["status"] == "Completed"
    assert worker_pids(da_server) == pids  # no simulation process had to be killed
    assert da.delete(f"/v1/jobs/{job_id}").status_code == 204


def test_timeout_secs_cancels_the_job(da: httpx.Client, objects: ObjectServer) -> None:
    job_id = submit(da, objects, isa_long_job(), backend="ibm_fez", timeout_secs=2)
    job = final(da, job_id, timeout=60)
    assert job["status"] == "Cancelled"
    assert "timeout_secs" in job["reason_message"]
    wait_until(lambda: f"/logs/{job_id}" in objects.objects, timeout=30)
    assert b"timeout_secs" in objects.objects[f"/logs/{job_id}"]


# -- storage failures ------------------------------------------------------------------------------


def test_unreachable_input_fails_the_job(da: httpx.Client, objects: ObjectServer) -> None:
    body = job_body(objects)
    body["storage"]["input"]["presigned_url"] = "http://127.0.0.1:1/nothing"
    assert da.post("/v1/jobs", json=body).status_code == 204
    job = final(da, body["id"])
    assert job["status"] == "Failed" and "Storage error" in job["reason_message"]
    assert job["reason_code"] and job["reason_solution"]
    assert f"/logs/{body['id']}" in objects.objects  # logs are written even on failure


def test_missing_input_object_fails_the_job(da: httpx.Client, objects: ObjectServer) -> None:
    body = job_body(objects)  # nothing uploaded at the input URL: 404 from storage
    assert da.post("/v1/jobs", json=body).status_code == 204
    job = final(da, body["id"])
    assert job["status"] == "Failed" and "HTTP 404" in job["reason_message"]


def test_input_that_does_not_parse_fails_the_job(da: httpx.Client, objects: ObjectServer) -> None:
    job_id = submit(da, objects, "this is not JSON")
    job = final(da, job_id)
    assert job["status"] == "Failed" and job["reason_message"]


@pytest.mark.parametrize(
    "content",
    [
        '{"SECRET-TOKEN-1": "leak me"',  # not JSON
        json.dumps({"pubs": [["OPENQASM 3.0; SECRET-TOKEN-1 q;"]], "version": 2}),
        json.dumps({"pubs": [[{"__type__": "QuantumCircuit", "__value__": "SECRET-TOKEN-1"}]]}),
        json.dumps({"pubs": "SECRET-TOKEN-1", "SECRET-TOKEN-1": {"x": 1}}),
    ],
)
def test_what_a_storage_url_returns_never_shows_in_the_job(
    da: httpx.Client, objects: ObjectServer, content: str
) -> None:
    """SSRF: a URL's content must not come back through the reason or the logs."""
    job_id = submit(da, objects, content)
    job = final(da, job_id)
    assert job["status"] == "Failed"
    assert "SECRET-TOKEN-1" not in json.dumps(job)
    assert f"{len(content)} bytes" in job["reason_message"], job["reason_message"]
    wait_until(lambda: f"/logs/{job_id}" in objects.objects, timeout=30)
    assert b"SECRET-TOKEN-1" not in objects.objects[f"/logs/{job_id}"]


def test_refused_result_upload_fails_the_job(da: httpx.Client, objects: ObjectServer) -> None:
    objects.refuse_puts = True
    try:
        job_id = submit(da, objects)
        job = final(da, job_id)
    finally:
        objects.refuse_puts = False
    assert job["status"] == "Failed" and "HTTP 403" in job["reason_message"]
