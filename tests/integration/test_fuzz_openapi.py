"""Schemathesis against the emulator's own OpenAPI documents (Runtime, Direct Access, control
plane), on a real server process: no 5xx, only documented status codes and media types, every
error in its API's envelope. Bounded: a few dozen generated requests per operation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.conftest import bearer
from tests.support import EmulatorServer, wait_until

pytestmark = pytest.mark.slow

EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure can be replayed
    suppress_health_check=list(HealthCheck),
)
ADMIN_READS = "GET"
counted: list[int] = []


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("fuzz-openapi"), "--backends", "fake_manila,ibm_fez", workers=1
    ).start()
    yield server
    assert server.health()["status"] == "ok"  # still healthy after every case
    server.stop()


@pytest.fixture(scope="module")
def auth(fuzzed: EmulatorServer) -> dict[str, str]:
    return bearer(fuzzed.url)


def _schema(url: str) -> Any:
    return schemathesis.openapi.from_url(url)


def _fuzz(url: str, server: EmulatorServer, headers: dict[str, str], methods: str = "") -> None:
    """Every operation of the document at `url`, EXAMPLES generated cases each."""
    schema = schemathesis.openapi.from_url(url)
    if methods:
        schema = schema.include(method=methods)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: Any) -> None:
            _call(case, server, headers)

        run()


def _call(case: Any, server: EmulatorServer, headers: dict[str, str]) -> None:
    response = case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)
    counted.append(response.status_code)
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and body, response.text


def test_runtime_api(fuzzed: EmulatorServer, auth: dict[str, str]) -> None:
    _fuzz(fuzzed.url + "/api/openapi.json", fuzzed, auth)


def test_direct_access_api(fuzzed: EmulatorServer, auth: dict[str, str]) -> None:
    _fuzz(fuzzed.url + "/v1/openapi.json", fuzzed, auth)


def test_control_plane_reads(fuzzed: EmulatorServer) -> None:
    # Only reads: its POST, PUT and DELETE would reset or fault the server under test.
    _fuzz(fuzzed.url + "/_emulator/openapi.json", fuzzed, {}, ADMIN_READS)


def test_every_stored_job_still_reads_and_ends(
    fuzzed: EmulatorServer, auth: dict[str, str]
) -> None:
    """After the fuzzing above (run first in this module): every job the fuzzer got accepted
    reaches a final state, and the store still serves every job on both APIs."""
    with httpx.Client(base_url=fuzzed.url, headers=auth, timeout=60) as client:

        def all_final() -> list[dict[str, Any]] | None:
            listed = client.get("/api/v1/jobs", params={"limit": 200, "exclude_params": "true"})
            assert listed.status_code == 200, listed.text
            jobs: list[dict[str, Any]] = listed.json()["jobs"]
            pending = [j for j in jobs if j["state"]["status"] in ("Queued", "Running")]
            return None if pending else jobs or [{}]

        for job in wait_until(all_final, timeout=240):
            if job:
                assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 200
        assert client.get("/v1/jobs").status_code == 200
    statuses = Counter(counted)
    print(f"schemathesis: {len(counted)} requests, statuses {dict(sorted(statuses.items()))}")
    assert not [code for code in statuses if code >= 500]
