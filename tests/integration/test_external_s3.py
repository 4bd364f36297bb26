"""Direct Access jobs whose storage is an external S3-compatible server (moto's server mode).

The presigned URLs carry real SigV4 signatures made by boto3 for that server; the emulator's
worker must use them as they are, for the input GET and the results/logs PUTs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import bearer
from tests.support import EmulatorServer, free_port, wait_until

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")
from botocore.config import Config  # noqa: E402
from qiskit_ibm_runtime import RuntimeDecoder  # noqa: E402

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"
BUCKET = "jobs"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/moto-api/", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=60, interval=0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def s3(moto_url: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def da_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path_factory.mktemp("external-s3"), workers=1).start()
    yield server
    server.stop()


def presigned(s3: Any, method: str, key: str) -> str:
    return str(
        s3.generate_presigned_url(method, Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=600)
    )


def submit(da_server: EmulatorServer, s3: Any, params: dict[str, Any] | None) -> str:
    """Upload `params` (None: upload nothing) and submit a job reading them."""
    job_id = str(uuid.uuid4())
    if params is not None:
        s3.put_object(Bucket=BUCKET, Key=f"input_{job_id}.json", Body=json.dumps(params).encode())
    storage = {
        name: {
            "type": "s3_compatible",
            "presigned_url": presigned(s3, method, f"{name}_{job_id}.json"),
        }
        for name, method in (
            ("input", "get_object"),
            ("results", "put_object"),
            ("logs", "put_object"),
        )
    }
    body = {
        "id": job_id,
        "backend": "fake_manila",
        "program_id": "sampler",
        "log_level": "info",
        "timeout_secs": 120,
        "storage": storage,
    }
    response = httpx.post(da_server.url + "/v1/jobs", json=body, headers=bearer(da_server.url))
    assert response.status_code == 204, response.text
    return job_id


def final_status(da_server: EmulatorServer, job_id: str) -> dict[str, Any]:
    headers = bearer(da_server.url)

    def done() -> dict[str, Any] | None:
        job = httpx.get(f"{da_server.url}/v1/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in {"Completed", "Failed", "Cancelled"} else None

    return wait_until(done, timeout=120, interval=0.1)


def sampler_params() -> dict[str, Any]:
    params = json.loads((FIXTURES / "post_jobs_sampler_body.json").read_text())["params"]
    params["options"] = {"simulator": {"seed_simulator": 3}}
    params["shots"] = 100
    return params


def test_presigned_urls_of_an_external_s3_server(da_server: EmulatorServer, s3: Any) -> None:
    job_id = submit(da_server, s3, sampler_params())
    job = final_status(da_server, job_id)
    assert job["status"] == "Completed", job
    assert presigned(s3, "get_object", "x").startswith("http://127.0.0.1")  # really moto's URL
    text = s3.get_object(Bucket=BUCKET, Key=f"results_{job_id}.json")["Body"].read()
    result = json.loads(text, cls=RuntimeDecoder)
    assert sum(result[0].data.meas.get_counts().values()) == 100
    logs = s3.get_object(Bucket=BUCKET, Key=f"logs_{job_id}.json")["Body"].read().decode()
    assert f"Finished {job_id}" in logs


def test_missing_input_object_fails_the_job_with_a_reason(
    da_server: EmulatorServer, s3: Any
) -> None:
    job_id = submit(da_server, s3, None)  # moto answers the input GET with 404 NoSuchKey
    job = final_status(da_server, job_id)
    assert job["status"] == "Failed"
    assert job["reason_code"] and "input" in job["reason_message"].lower()
    logs = s3.get_object(Bucket=BUCKET, Key=f"logs_{job_id}.json")["Body"].read().decode()
    assert "404" in logs  # the failure is logged where qrmi's task_logs reads
