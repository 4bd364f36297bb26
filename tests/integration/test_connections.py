"""Connection bounds on raw sockets: idle and slow connections are closed, a cap answers 503.

Deadlines are 1 s; the sockets wait up to 30 s for the server to close them, so what is
asserted is that the close comes, never how fast.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest

from tests.support import EmulatorControl, EmulatorServer, wait_until

pytestmark = pytest.mark.slow

PATIENCE_S = 30.0  # far beyond every deadline configured here


def _server(tmp_path_factory: pytest.TempPathFactory, *flags: str) -> Iterator[EmulatorServer]:
    data: Path = tmp_path_factory.mktemp("connections")
    server = EmulatorServer(data, *flags, workers=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keep_alive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """Only the keep-alive deadline is short."""
    yield from _server(tmp_path_factory, "--keep-alive-timeout", "1", "--header-read-timeout", "60")


@pytest.fixture(scope="module", params=["httptools", "h11"])
def header_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorServer]:
    """Only the header deadline is short; on each HTTP parser (the bounds are ours on both)."""
    yield from _server(
        tmp_path_factory,
        "--keep-alive-timeout",
        "60",
        "--header-read-timeout",
        "1",
        "--http-parser",
        request.param,
    )


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    yield from _server(
        tmp_path_factory,
        "--max-connections",
        "3",
        "--keep-alive-timeout",
        "60",
        "--header-read-timeout",
        "60",
    )


def connect(server: EmulatorServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE_S)
    sock.settimeout(PATIENCE_S)
    return sock


def request(sock: socket.socket, path: str = "/_emulator/health") -> h11.Response:
    """One keep-alive GET on `sock`, read to the end of its response (framed by h11)."""
    client = h11.Connection(h11.CLIENT)
    sock.sendall(
        client.send(h11.Request(method="GET", target=path, headers=[("Host", "127.0.0.1")]))
        + client.send(h11.EndOfMessage())
    )
    return read_response(sock, client)[0]


def read_response(
    sock: socket.socket, client: h11.Connection | None = None
) -> tuple[h11.Response, bytes]:
    """The response on `sock` and its body."""
    if client is None:
        # A response to a request this test did not frame: let h11 expect one.
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
    response: h11.Response | None = None
    body = b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            # b"" (EOF) ends a response without a length; h11 raises if one ends early.
            client.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response, body


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes `sock` (EOF or reset); False if it stays open PATIENCE_S."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def header(response: h11.Response, name: bytes) -> bytes | None:
    return next((v for k, v in response.headers if k == name), None)


def test_an_idle_keep_alive_connection_is_closed(keep_alive_server: EmulatorServer) -> None:
    with connect(keep_alive_server) as sock:
        assert request(sock).status_code == 200
        assert closed_by_server(sock)


def test_half_a_request_line_is_closed_at_the_header_deadline(
    header_server: EmulatorServer,
) -> None:
    with connect(header_server) as sock:
        sock.sendall(b"GET /_emulator/hea")
        assert closed_by_server(sock)


def test_half_the_headers_are_closed_at_the_header_deadline(
    header_server: EmulatorServer,
) -> None:
    with connect(header_server) as sock:
        sock.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ")
        assert closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed(header_server: EmulatorServer) -> None:
    with connect(header_server) as sock:
        assert closed_by_server(sock)


def test_headers_trickled_a_byte_at_a_time_do_not_extend_the_deadline(
    header_server: EmulatorServer,
) -> None:
    """Each byte would restart an idle timer; the header deadline counts from the connect."""
    trickle = b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
    give_up = time.monotonic() + PATIENCE_S
    with connect(header_server) as sock:
        for byte in trickle:
            assert time.monotonic() < give_up, "the trickling connection was never closed"
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return
            # Paces the trickle; readable means the server closed it.
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable and closed_by_server(sock):
                return
        pytest.fail("the whole trickle was accepted without a close")


def test_a_keep_alive_connection_has_the_header_deadline_for_its_next_request(
    header_server: EmulatorServer,
) -> None:
    with connect(header_server) as sock:
        assert request(sock).status_code == 200
        sock.sendall(b"GET /_emulator/health HTTP/1.1\r\nHo")  # stops the keep-alive timer
        assert closed_by_server(sock)


def test_an_idle_keep_alive_connection_outlives_the_header_deadline(
    header_server: EmulatorServer,
) -> None:
    """Between requests only the keep-alive timeout applies: the header deadline starts with
    the next request's first byte. (Counted from the response, it closed idle pooled
    connections early, racing the clients' next request.)"""
    with connect(header_server) as sock:
        assert request(sock).status_code == 200
        # Idle for three header deadlines (the keep-alive timeout is 60 s): still open.
        readable, _, _ = select.select([sock], [], [], 3.0)
        assert not readable, "the server closed (or wrote to) an idle keep-alive connection"
        assert request(sock).status_code == 200


def test_a_request_slower_than_the_header_deadline_is_answered(
    header_server: EmulatorServer,
) -> None:
    """The deadline is for headers: a request being served is never cut off by it."""
    control = EmulatorControl(header_server.url)
    try:
        control.add_fault(path="/api/v1/backends", latency_ms=2500, times=1)
        with connect(header_server) as sock:
            response = request(sock, "/api/v1/backends")
            assert response.status_code == 401  # answered (unauthenticated), after the delay
            assert request(sock).status_code == 200  # and the connection still serves
    finally:
        control.clear_faults()
        control.close()


def test_headers_growing_beyond_the_size_bound_are_refused(header_server: EmulatorServer) -> None:
    """A client cannot make the server buffer unbounded headers (before any deadline)."""
    with connect(header_server) as sock:
        sock.sendall(
            b"GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000
        )
        response, _ = read_response(sock)
        assert response.status_code == 400
        assert closed_by_server(sock)


def test_connections_beyond_the_cap_get_503_until_earlier_ones_close(
    capped_server: EmulatorServer,
) -> None:
    held = [connect(capped_server) for _ in range(3)]
    try:
        for sock in held:  # each is now surely counted: it has been served
            assert request(sock).status_code == 200
        with connect(capped_server) as extra:
            # Refused at once, before it sends anything: the cap counts connections.
            response, body = read_response(extra)
            assert response.status_code == 503
            assert header(response, b"connection") == b"close"
            assert header(response, b"retry-after") == b"1"
            error = json.loads(body)["errors"][0]
            assert error["code"] == "too_many_connections" and "3" in error["message"]
            assert closed_by_server(extra)
        for sock in held:  # the earlier connections still work
            assert request(sock).status_code == 200
    finally:
        for sock in held:
            sock.close()

    def served() -> bool:
        with connect(capped_server) as sock:
            return request(sock).status_code == 200

    wait_until(served, timeout=PATIENCE_S)
    assert "connection(s) refused with 503" in capped_server.log()
