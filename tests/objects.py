"""A minimal object server for tests: GET/PUT by path, with switchable failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ObjectServer:
    """Serves `objects[path]` on GET and stores PUT bodies; `refuse_puts` answers 403;
    `hold_gets` (an Event) makes GETs wait until it is set."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.refuse_puts = False
        self.hold_gets: threading.Event | None = None  # GETs wait for it while it is set
        self.get_arrived = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.get_arrived.set()
                if server.hold_gets is not None:
                    server.hold_gets.wait(60)
                body = server.objects.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def do_PUT(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                if server.refuse_puts:
                    self.send_response(403)
                else:
                    server.objects[self.path.split("?")[0]] = data
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"

    def storage(self, name: str, logs: bool = True) -> dict[str, dict[str, str]]:
        """A Direct Access `storage` block for object names derived from `name`."""
        entries = {
            "input": {"type": "s3_compatible", "presigned_url": f"{self.url}/in/{name}?sig=x"},
            "results": {"type": "s3_compatible", "presigned_url": f"{self.url}/results/{name}"},
        }
        if logs:
            entries["logs"] = {"type": "s3_compatible", "presigned_url": f"{self.url}/logs/{name}"}
        return entries


@contextmanager
def object_server() -> Iterator[ObjectServer]:
    server = ObjectServer()
    thread = threading.Thread(target=server._http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()
