"""The HTTP server's connection bounds: deadlines, a connection cap and the open-file limit.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but has no deadline for a
connection that never finishes its request headers, and its `limit_concurrency` is checked only
once a complete request has arrived: connections that send nothing, or a byte at a time, are
never counted nor closed, so a few hundred of them exhaust the process's file descriptors and
lock every client out. `_Bounds` adds exactly those two checks to uvicorn's httptools protocol
(the default) and to its h11 one, and to httptools the bound on incomplete headers that h11 has
built in; everything else (parsing, keep-alive, pipelining, shutdown) is uvicorn's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from emulator.config import Settings

log = logging.getLogger("emulator.server")

# Largest incomplete request line plus headers h11 buffers (its own default, made explicit):
# beyond it the request is answered 400 and the connection closed. (Headers complete within one
# read are parsed whatever their size, so a connection buffers at most one read, 256 KiB, more.)
# Real clients send about 2 KiB.
MAX_HEADER_BYTES = 16 * 1024
# A refused connection's request is read and dropped for this long after the 503, so closing it
# does not reset the connection before the client has read the answer.
REFUSED_LINGER_S = 2.0
# File descriptors the server needs besides client connections: store, workers' pipes, logs.
RESERVED_FDS = 64
FDS_PER_WORKER = 4
# A hard limit of "unlimited" cannot be a soft limit for open files (Linux caps it at nr_open).
FD_LIMIT_CEILING = 1 << 20


def _refusal(max_connections: int) -> bytes:
    """The bytes of the 503 answered to a connection past the cap, framed by h11."""
    body = json.dumps(
        {
            "errors": [
                {
                    "code": "too_many_connections",
                    "message": f"The emulator is serving its maximum of {max_connections} "
                    "connections; retry shortly.",
                }
            ],
            "status_code": 503,
        }
    ).encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("retry-after", "1"),
        ("connection", "close"),
    ]
    # h11 frames a response only once it has seen a request: give it a stand-in one.
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nhost: emulator\r\n\r\n")
    conn.next_event()
    parts = [
        conn.send(h11.Response(status_code=503, headers=headers, reason=b"Service Unavailable")),
        conn.send(h11.Data(data=body)),
        conn.send(h11.EndOfMessage()),
    ]
    return b"".join(p for p in parts if p)


class _Bounds:
    """A header deadline and a connection cap on top of one of uvicorn's HTTP protocols (see
    the module). Costs one timer per connection and per request (uvicorn arms one for
    keep-alive too)."""

    # What the protocol classes below inherit from uvicorn's.
    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any

    header_read_timeout: float = 10.0
    max_connections: int = 512
    refusal: bytes = _refusal(512)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read only so the close after the 503 is orderly
        if self._header_timer is None and self._between_requests():
            # The first bytes of a keep-alive connection's next request: its headers have
            # this long to complete. Data does not reset it (unlike uvicorn's idle timer).
            self._arm_header_deadline()
        super().data_received(data)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        # Idle now: uvicorn's keep-alive timer governs until the next request's first byte.
        # (Counting the header deadline from the response instead made it a second, shorter
        # keep-alive timeout: clients whose pools keep idle connections longer then raced
        # the close and lost a request.)
        self._cancel_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_timer = self.loop.call_later(self.header_read_timeout, self._headers_overdue)

    def _cancel_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if not self._between_requests():
            return  # a request is being served: its headers arrived in time
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self) -> None:
        self.connections.discard(self)
        self._refused = True
        _note_refusal(self.max_connections)
        self.transport.write(self.refusal)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REFUSED_LINGER_S, self.transport.close)


class BoundedH11Protocol(_Bounds, H11Protocol):
    """uvicorn's h11 protocol with the bounds (h11 itself bounds incomplete headers)."""


class BoundedHttpToolsProtocol(_Bounds, HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds, and the bound on incomplete headers that
    httptools lacks (it hands a header over only once complete): bytes received while a
    request's line and headers are incomplete are counted, and past MAX_HEADER_BYTES the
    request is answered 400 and its connection closed, as h11 does (so, as with h11, a
    connection buffers at most one read more)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._in_headers = True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Counted after parsing, so a read that completes the headers (a body may follow in
        # it) is not; one that leaves them incomplete is, whole.
        if self._in_headers and not self._refused:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self.send_400_response("Request line and headers are too large.")

    def on_message_begin(self) -> None:
        self._header_bytes, self._in_headers = 0, True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()


_refusals = {"count": 0, "logged_at": 0.0}


def _note_refusal(max_connections: int) -> None:
    """Log refused connections at most every 10 s, so a flood does not flood the log too."""
    _refusals["count"] += 1
    now = time.monotonic()
    if now - _refusals["logged_at"] >= 10.0:
        log.warning(
            "%d connection(s) refused with 503: already serving --max-connections %d",
            _refusals["count"],
            max_connections,
        )
        _refusals["count"], _refusals["logged_at"] = 0, now


def protocol_for(settings: Settings) -> type[_Bounds]:
    """The protocol class with `settings`' bounds (uvicorn instantiates it per connection):
    httptools by default (several times faster, docs/performance.md); `--http-parser h11`
    for a pure-Python parser."""
    base: type[_Bounds] = (
        BoundedH11Protocol if settings.http_parser == "h11" else BoundedHttpToolsProtocol
    )
    return type(
        base.__name__,
        (base,),
        {
            "header_read_timeout": float(settings.header_read_timeout),
            "max_connections": settings.max_connections,
            "refusal": _refusal(settings.max_connections),
        },
    )


def raise_open_file_limit(settings: Settings) -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit, so --max-connections is what clients
    hit rather than "too many open files"; warns when even that is too low. The new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT_CEILING)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open-file limit raised from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays %d: cannot raise it (%s)", soft, exc)
    else:
        log.info("open-file limit: %d (already the hard limit)", soft)
    needed = settings.max_connections + RESERVED_FDS + FDS_PER_WORKER * settings.workers
    if soft < needed:
        log.warning(
            "open-file limit %d is below the %d that --max-connections %d needs; lower "
            "--max-connections or raise the hard limit (ulimit -Hn)",
            soft,
            needed,
            settings.max_connections,
        )
    return soft


def server_config(app: Any, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for `app` with the connection bounds of `settings`."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # A line per request costs more than a status poll itself: only when debugging (the
        # control plane's request journal records every request anyway).
        access_log=settings.log_level.lower() in ("debug", "trace"),
        timeout_graceful_shutdown=10,
        http=protocol_for(settings),
        # No API here uses WebSockets; an upgrade would also hand the socket to a protocol
        # without the header deadline.
        ws="none",
        timeout_keep_alive=settings.keep_alive_timeout,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
