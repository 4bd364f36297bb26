"""A status poll of an unfinished job is held until the job ends (or the hold runs out), and
lets go of everything it holds when its client leaves and when the server stops."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorControl, EmulatorServer, wait_until

pytestmark = pytest.mark.slow

HOLD_S = 600  # far beyond any test's deadline: a poll that was held would time out


def holding_server(data_dir: Path) -> EmulatorServer:
    server = EmulatorServer(data_dir, "--status-hold-ms", str(HOLD_S * 1000), workers=1).start()
    server.wait_workers_ready()
    return server


@pytest.fixture(scope="module")
def hold_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = holding_server(tmp_path_factory.mktemp("hold"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def held(hold_server: EmulatorServer) -> Iterator[httpx.Client]:
    url = hold_server.url
    with httpx.Client(base_url=url + "/api/v1", headers=bearer(url), timeout=60) as client:
        yield client


def running_for_long(server: EmulatorServer, api: httpx.Client) -> str:
    """A job that stays Running (an outcome rule delays it; no simulation keeps a core)."""
    control = EmulatorControl(server.url)
    control.delay_next_jobs(HOLD_S)
    job_id = str(api.post("/jobs", json=sampler_body()).json()["id"])
    wait_until(lambda: control.job(job_id)["state"] == "running", timeout=60)
    control.close()
    return job_id


def raw_poll(server: EmulatorServer, job_id: str, token: dict[str, str]) -> socket.socket:
    """A status poll sent on a bare socket, so the test can walk away from it."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"GET /api/v1/jobs/{job_id}?exclude_params=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {token['Authorization']}\r\n\r\n".encode()
    )
    return sock


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


def test_a_held_poll_whose_client_leaves_lets_go(
    hold_server: EmulatorServer, held: httpx.Client
) -> None:
    control = EmulatorControl(hold_server.url)
    job_id = running_for_long(hold_server, held)
    at_rest = control.info()["tasks"]
    sock = raw_poll(hold_server, job_id, bearer(hold_server.url))
    wait_until(lambda: control.info()["held_polls"] == 1, timeout=30)
    sock.close()  # the client gives up; the job runs on for HOLD_S
    wait_until(lambda: control.info()["held_polls"] == 0, timeout=30)
    wait_until(lambda: control.info()["tasks"] <= at_rest, timeout=30)
    assert held.post(f"/jobs/{job_id}/cancel").status_code == 204  # frees the worker
    control.close()


def test_held_polls_answer_when_the_server_stops(tmp_path: Path) -> None:
    server = holding_server(tmp_path)
    url = server.url
    with httpx.Client(base_url=url + "/api/v1", headers=bearer(url), timeout=60) as api:
        job_id = running_for_long(server, api)
        control = EmulatorControl(url)
        answers: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda: answers.append(api.get(f"/jobs/{job_id}", timeout=HOLD_S / 10))
        )
        poll.start()
        wait_until(lambda: control.info()["held_polls"] == 1, timeout=30)
        control.close()
        assert server.stop() == 0
        poll.join(60)
    (answer,) = answers
    assert answer.status_code == 200 and answer.json()["state"]["status"] == "Running"
