"""The built-in object store's access keys end to end: a server with configured keys, boto3
and presigned URLs on its port, and Direct Access jobs whose worker fetches those URLs.

A job cannot be used to reach another instance's objects: the worker has no privilege of its
own, it presents the URL's signature, and the store judges that like any other request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from qiskit_ibm_runtime import RuntimeDecoder

from tests.conftest import CRN_A, CRN_B, INSTANCES, bearer
from tests.s3_signing import s3_client
from tests.support import EmulatorServer, wait_until

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"
KEY_A = ("AKIATEAMA", "team-a-secret")
KEY_B = ("AKIATEAMB", "team-b-secret")
BUCKET = "team-a-jobs"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    keys = f"{KEY_A[0]}:{KEY_A[1]}=team-a,{KEY_B[0]}:{KEY_B[1]}={CRN_B}"
    instance = EmulatorServer(
        tmp_path_factory.mktemp("store-auth"),
        "--instances",
        INSTANCES,
        "--s3-credentials",
        keys,
        workers=1,
    ).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def s3_a(server: EmulatorServer) -> Iterator[Any]:
    client = s3_client(server.url, KEY_A)
    client.create_bucket(Bucket=BUCKET)
    yield client
    client.close()


@pytest.fixture(scope="module")
def s3_b(server: EmulatorServer) -> Iterator[Any]:
    client = s3_client(server.url, KEY_B)
    yield client
    client.close()


def sampler_params() -> dict[str, Any]:
    params = json.loads((FIXTURES / "post_jobs_sampler_body.json").read_text())["params"]
    params["options"] = {"simulator": {"seed_simulator": 5}}
    params["shots"] = 50
    return params


def urls(signer: Any, job_id: str) -> dict[str, dict[str, str]]:
    """The job's storage block: presigned by `signer`, all in team-a's bucket."""
    return {
        name: {
            "type": "s3_compatible",
            "presigned_url": signer.generate_presigned_url(
                method, Params={"Bucket": BUCKET, "Key": f"{name}_{job_id}.json"}, ExpiresIn=600
            ),
        }
        for name, method in (
            ("input", "get_object"),
            ("results", "put_object"),
            ("logs", "put_object"),
        )
    }


def run_job(server: EmulatorServer, instance: str, storage: dict[str, Any], job_id: str) -> Any:
    headers = {**bearer(server.url), "Service-CRN": instance}
    body = {
        "id": job_id,
        "backend": "fake_manila",
        "program_id": "sampler",
        "log_level": "info",
        "timeout_secs": 120,
        "storage": storage,
    }
    response = httpx.post(server.url + "/v1/jobs", json=body, headers=headers)
    assert response.status_code == 204, response.text

    def ended() -> dict[str, Any] | None:
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in {"Completed", "Failed", "Cancelled"} else None

    return wait_until(ended, timeout=120, interval=0.1)


def object_names(s3: Any) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_job_with_its_own_instances_urls_completes(server: EmulatorServer, s3_a: Any) -> None:
    job_id = str(uuid.uuid4())
    s3_a.put_object(Bucket=BUCKET, Key=f"input_{job_id}.json", Body=json.dumps(sampler_params()))
    job = run_job(server, CRN_A, urls(s3_a, job_id), job_id)
    assert job["status"] == "Completed", job
    text = s3_a.get_object(Bucket=BUCKET, Key=f"results_{job_id}.json")["Body"].read()
    assert sum(json.loads(text, cls=RuntimeDecoder)[0].data.meas.get_counts().values()) == 50


def test_job_cannot_read_another_instances_objects(
    server: EmulatorServer, s3_a: Any, s3_b: Any
) -> None:
    job_id = str(uuid.uuid4())
    s3_a.put_object(Bucket=BUCKET, Key=f"input_{job_id}.json", Body=json.dumps(sampler_params()))
    with pytest.raises(ClientError) as direct:  # B's key is refused on A's bucket...
        s3_b.get_object(Bucket=BUCKET, Key=f"input_{job_id}.json")
    assert direct.value.response["Error"]["Code"] == "AccessDenied"

    # ...and so is B's job, whose worker presents URLs B signed for A's objects.
    job = run_job(server, CRN_B, urls(s3_b, job_id), job_id)
    assert job["status"] == "Failed", job
    assert "Storage error" in job["reason_message"] and "HTTP 403" in job["reason_message"]
    assert object_names(s3_a) >= {f"input_{job_id}.json"}
    assert not object_names(s3_a) & {f"results_{job_id}.json", f"logs_{job_id}.json"}


def test_job_with_urls_of_an_unknown_key_fails(server: EmulatorServer, s3_a: Any) -> None:
    job_id = str(uuid.uuid4())
    s3_a.put_object(Bucket=BUCKET, Key=f"input_{job_id}.json", Body=json.dumps(sampler_params()))
    forger = s3_client(server.url, ("AKIANOBODY", KEY_A[1]))
    job = run_job(server, CRN_A, urls(forger, job_id), job_id)
    forger.close()
    assert job["status"] == "Failed" and "HTTP 403" in job["reason_message"], job
    assert f"results_{job_id}.json" not in object_names(s3_a)
