"""A status poll of an unfinished job is held until the job ends (or the hold runs out)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorServer

pytestmark = pytest.mark.slow

HOLD_S = 600  # far beyond any test's deadline: a poll that was held would time out


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("hold"), "--status-hold-ms", str(HOLD_S * 1000), workers=1
    ).start()
    server.wait_workers_ready()
    with httpx.Client(base_url=server.url + "/api/v1", headers=bearer(server.url), timeout=60) as c:
        yield c
    server.stop()


def test_first_poll_answers_with_the_outcome(held: httpx.Client) -> None:
    job_id = held.post("/jobs", json=sampler_body()).json()["id"]
    job = held.get(f"/jobs/{job_id}", params={"exclude_params": "true"}).json()
    assert job["state"]["status"] == "Completed"


def test_a_queued_job_is_held_through_running_to_its_outcome(held: httpx.Client) -> None:
    # One worker: the second job is Queued when polled, then Running, then Completed. The
    # hold must not answer on the first of those changes.
    held.post("/jobs", json=sampler_body())
    second = held.post("/jobs", json=sampler_body()).json()["id"]
    job = held.get(f"/jobs/{second}", params={"exclude_params": "true"}).json()
    assert job["state"]["status"] == "Completed"


def test_polls_of_final_jobs_are_not_held(held: httpx.Client) -> None:
    job_id = held.post("/jobs", json=sampler_body()).json()["id"]
    held.get(f"/jobs/{job_id}")
    # A held poll would wait HOLD_S; this deadline is a tenth of it (a deadline, not a timing).
    answer = held.get(f"/jobs/{job_id}", timeout=HOLD_S / 10)
    assert answer.json()["state"]["status"] == "Completed"
