"""Every client mistake the hardening issue lists, as a table: request → status and field.

In-process (Starlette's TestClient on `create_app`): these are envelopes and validation, and
none needs a worker. Each row failed with a 5xx (or was accepted) before the fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.config import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SAMPLER = json.loads((FIXTURES / "post_jobs_sampler_body.json").read_text())
STORAGE = {
    "input": {"type": "s3_compatible", "presigned_url": "http://127.0.0.1:9/b/in"},
    "results": {"type": "s3_compatible", "presigned_url": "http://127.0.0.1:9/b/out"},
}
DA_JOB = {"id": "da-1", "backend": "ibm_fez", "program_id": "sampler", "timeout_secs": 60}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def client(data_dir: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=data_dir, workers=0, port=8000)
    app = create_app(settings, start_workers=False)
    with TestClient(
        app, base_url="http://127.0.0.1:8000", raise_server_exceptions=False
    ) as test_client:
        token = test_client.post(
            "/iam/identity/token",
            data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": "k"},
        ).json()["access_token"]
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


def raw(body: str) -> Callable[[TestClient], Any]:
    return lambda c: c.post(
        "/api/v1/jobs", content=body, headers={"Content-Type": "application/json"}
    )


def job(**changes: Any) -> Callable[[TestClient], Any]:
    body = {**SAMPLER, **changes}
    return lambda c: c.post(
        "/api/v1/jobs",
        content=json.dumps(body),  # json.dumps writes lone surrogates as \\ud800 escapes
        headers={"Content-Type": "application/json"},
    )


def da_job(**changes: Any) -> Callable[[TestClient], Any]:
    body = {**DA_JOB, "storage": STORAGE, **changes}
    return lambda c: c.post("/v1/jobs", content=json.dumps(body))


def get(path: str) -> Callable[[TestClient], Any]:
    return lambda c: c.get(path)


PARAMS = '{"program_id": "sampler", "backend": "fake_manila", "params": {"pubs": [], "x": %s}}'
CASES: list[tuple[str, Callable[[TestClient], Any], int, str | None]] = [
    ("nested 1000+ deep", raw("[" * 1200 + "]" * 1200), 400, "body"),
    ("nested 120 deep", raw('{"params": ' + "[" * 120 + "]" * 120 + "}"), 400, "params"),
    ("integer of 5000 digits", raw(PARAMS % ("9" * 5000)), 400, "params.x"),
    ("integer beyond int64", raw(PARAMS % str(2**64)), 400, "params.x"),
    ("NaN", raw(PARAMS % "NaN"), 400, "params.x"),
    ("Infinity", raw(PARAMS % "-Infinity"), 400, "params.x"),
    ("1e400 (parses as infinity)", raw(PARAMS % "1e400"), 400, "params.x"),
    ("poison NaN under an unknown key", raw(PARAMS.replace('"x"', '"zz"') % "NaN"), 400, None),
    ("lone surrogate in tags", job(tags=["\ud800"]), 400, "tags[0]"),
    ("lone surrogate in session_id", job(session_id="\udfff"), 400, "session_id"),
    ("lone surrogate in backend", job(backend="\ud800"), 400, "backend"),
    ("lone surrogate in a key", raw('{"\\ud800": 1}'), 400, "body"),
    ("backend of the wrong type", job(backend={"name": "fake_manila"}), 400, "backend"),
    ("backend a list", job(backend=["fake_manila"]), 400, "backend"),
    ("not UTF-8", lambda c: c.post("/api/v1/jobs", content=b'{"a": "\xff"}'), 400, "body"),
    ("Direct Access id with a lone surrogate", da_job(id="\ud800"), 422, "id"),
    ("Direct Access timeout_secs 2**63", da_job(timeout_secs=2**63), 400, "timeout_secs"),
    ("Direct Access timeout_secs 0", da_job(timeout_secs=0), 422, "timeout_secs"),
    ("offset beyond int64", get("/api/v1/jobs?offset=9223372036854775808"), 400, "offset"),
    ("negative offset", get("/api/v1/jobs?offset=-1234"), 400, "offset"),
    ("offset not a number", get("/api/v1/jobs?offset=ten"), 400, "offset"),
    ("repeated limit", get("/api/v1/jobs?limit=1&limit=2"), 400, "limit"),
    (
        "repeated exclude_params",
        get("/api/v1/jobs?exclude_params=1&exclude_params=0"),
        400,
        "exclude_params",
    ),
    ("lone surrogate in a filter", get("/api/v1/jobs?backend=%ED%A0%80"), 200, None),
    (
        "bad exclude_params on a job",
        get("/api/v1/jobs/x?exclude_params=maybe"),
        400,
        "exclude_params",
    ),
    ("tag search too short", get("/api/v1/tags?search=ab"), 400, "search"),
    ("tag search repeated", get("/api/v1/tags?search=abc&search=abd"), 400, "search"),
    (
        "properties with a bad date",
        get("/api/v1/backends/fake_manila/properties?updated_before=x"),
        400,
        "updated_before",
    ),
    (
        "session max_ttl of 30 digits",
        lambda c: c.post(
            "/api/v1/sessions",
            content='{"mode": "batch", "backend": "fake_manila", "max_ttl": ' + "1" * 30 + "}",
        ),
        400,
        "max_ttl",
    ),
    (
        "control plane: nested deep",
        lambda c: c.post(
            "/_emulator/faults",
            content="[" * 2000 + "]" * 2000,
            headers={"Content-Type": "application/json"},
        ),
        400,
        "body",
    ),
    (
        "control plane: NaN",
        lambda c: c.post(
            "/_emulator/seed", content='{"seed": NaN}', headers={"Content-Type": "application/json"}
        ),
        400,
        "seed",
    ),
    (
        "control plane: limit beyond range",
        get("/_emulator/jobs?limit=99999999999999999999"),
        400,
        "limit",
    ),
    (
        "IAM: a form over 64 KiB",
        lambda c: c.post(
            "/iam/identity/token",
            content=b"apikey=" + b"k" * 70_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        413,
        None,
    ),
    (
        "IAM: too many form fields",
        lambda c: c.post(
            "/iam/identity/token",
            content="&".join(f"f{i}=1" for i in range(100)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        400,
        None,
    ),
]
SSRF: list[tuple[str, str, str]] = [
    ("the control plane", "http://127.0.0.1:8000/_emulator/reset", "API routes"),
    ("the Runtime API", "http://localhost:8000/api/v1/jobs?X-Amz-Signature=x", "API routes"),
    ("this server, not presigned", "http://127.0.0.1:8000/bucket/key", "presigned"),
    ("another host", "http://192.0.2.10/bucket/key", "not allowed"),
    ("a file URL", "file:///etc/passwd", "http(s)"),
    ("credentials in the URL", "http://user:pw@127.0.0.1:9/b/k", "credentials"),
]


@pytest.mark.parametrize(
    ("request_of", "status", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_client_mistakes_answer_4xx_in_the_apis_envelope(
    client: TestClient, request_of: Callable[[TestClient], Any], status: int, field: str | None
) -> None:
    response = request_of(client)
    assert response.status_code == status, response.text
    if status == 200:
        return
    body = response.json()
    if "errors" in body:  # Runtime and Direct Access
        message = body["errors"][0]["message"]
    elif "error" in body:  # the control plane
        message = body["error"]["message"]
    else:  # IAM
        message = body["errorMessage"]
    if field is not None:
        assert message.startswith(field), message


@pytest.mark.parametrize(("url", "words"), [s[1:] for s in SSRF], ids=[s[0] for s in SSRF])
def test_direct_access_storage_urls_cannot_point_anywhere(
    client: TestClient, url: str, words: str
) -> None:
    storage = {**STORAGE, "input": {"type": "s3_compatible", "presigned_url": url}}
    response = da_job(id="ssrf", storage=storage)(client)
    assert response.status_code == 422, response.text
    message = response.json()["errors"][0]["message"]
    assert message.startswith("storage.input.presigned_url:") and words in message, message


def test_a_poison_job_already_stored_still_reads(client: TestClient, data_dir: Path) -> None:
    """A row holding NaN in its params (written by an older version) breaks no read."""
    body = {**SAMPLER, "tags": ["poison"]}
    job_id = client.post("/api/v1/jobs", json=body).json()["id"]
    engine = sqlalchemy.create_engine(f"sqlite:///{data_dir / 'emulator.db'}")
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE jobs SET params = :p WHERE id = :id"),
            {"p": '{"pubs": [], "zz": NaN}', "id": job_id},
        )
    engine.dispose()
    listed = client.get("/api/v1/jobs", params={"tags": "poison"})
    assert listed.status_code == 200 and listed.json()["count"] == 1
    single = client.get(f"/api/v1/jobs/{job_id}")
    assert single.status_code == 200 and "params" not in single.json()
    assert (
        client.get(f"/api/v1/jobs/{job_id}", params={"exclude_params": "true"}).status_code == 200
    )


def test_secrets_never_show_in_the_control_plane(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, workers=0, s3_credentials=("AKIDEXAMPLE:very-secret=emulator-instance",)
    )
    with TestClient(
        create_app(settings, start_workers=False), base_url="http://localhost"
    ) as test_client:
        info = test_client.get("/_emulator/info")
    assert info.status_code == 200
    assert "very-secret" not in info.text and "AKIDEXAMPLE" in info.text
