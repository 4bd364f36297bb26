"""Decompression bombs and size claims cost the server no memory, and a big submission does not
hold up a small one (real server process; RSS measured with psutil)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import bearer
from tests.support import EmulatorServer
from tests.unit.test_decoding_limits import qpy_claiming, zlib_bomb

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RSS_BOUND = 100 * 1024 * 1024
"""How much the server's RSS may grow over the bomb cases (each would take gigabytes)."""


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("memory"), "--backends", "fake_manila", workers=0
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(bounded: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=bounded.url + "/api/v1", headers=bearer(bounded.url), timeout=120
    ) as client:
        yield client


def small_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / "post_jobs_sampler_body.json").read_text())
    return body


def with_pub(pub: Any) -> dict[str, Any]:
    body = small_body()
    body["params"]["pubs"] = [pub]
    return body


def rss(server: EmulatorServer) -> int:
    assert server.process is not None
    return int(psutil.Process(server.process.pid).memory_info().rss)


def test_bombs_and_size_claims_are_refused_without_memory(
    bounded: EmulatorServer, api: httpx.Client
) -> None:
    circuit = small_body()["params"]["pubs"][0][0]
    cases = {
        "zlib bomb (1 GiB of zeros) as parameter values": with_pub(
            [circuit, {"__type__": "ndarray", "__value__": zlib_bomb()}]
        ),
        "QPY header claiming 10**7 clbits": with_pub(
            [{"__type__": "QuantumCircuit", "__value__": qpy_claiming(10**7)}]
        ),
    }
    api.post("/jobs", json=small_body()).raise_for_status()  # warm: imports, caches
    before = rss(bounded)
    for name, body in cases.items():
        response = api.post("/jobs", json=body)
        assert response.status_code == 400, (name, response.text)
        message = response.json()["errors"][0]["message"]
        assert message.startswith("params.pubs[0]") and "--max-decoded-mb" in message, message
    after = rss(bounded)
    print(f"server RSS {before / 2**20:.0f} MiB before the bombs, {after / 2**20:.0f} MiB after")
    assert after - before < RSS_BOUND
    assert api.get("/jobs", params={"limit": 1}).status_code == 200


def test_a_big_submission_does_not_hold_up_a_small_one(
    bounded: EmulatorServer, api: httpx.Client
) -> None:
    """Order, not time: a small job sent while a ~27 MB submission is being received and
    parsed is answered before it (the big one is read, parsed and validated off the event loop
    and without a server-wide lock, so it only delays itself)."""
    big_body = small_body()
    big_body["annotations"] = [i / 7 for i in range(1_500_000)]
    big = json.dumps(big_body).encode()
    answered: list[str] = []
    token = api.headers["Authorization"]

    def send_big() -> None:
        with socket.create_connection(("127.0.0.1", bounded.port), timeout=120) as sock:
            sock.sendall(
                b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: {token}\r\n".encode()
                + b"Content-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(big)}\r\n\r\n".encode()
                + big
            )
            uploaded.set()
            reply = sock.makefile("rb").readline()
        answered.append("big " + reply.decode().strip())

    uploaded = threading.Event()
    sender = threading.Thread(target=send_big)
    sender.start()
    assert uploaded.wait(120)
    small = api.post("/jobs", json=small_body())
    answered.append(f"small HTTP/1.1 {small.status_code}")
    sender.join(120)
    assert answered[0].startswith("small") and len(answered) == 2, answered
    assert answered[1].startswith("big HTTP/1.1 200"), answered
