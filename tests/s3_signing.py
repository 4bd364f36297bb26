"""Signed requests to the built-in object store, made with botocore the way S3 clients make them.

`call` drives the storage ASGI app in-process (httpx's ASGITransport) with a request signed
by botocore's own `S3SigV4Auth`; `presign` gives a URL from boto3's presigner; `Served` runs
the app under uvicorn for boto3 itself.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import uvicorn
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from starlette.types import ASGIApp, Message, Scope

from emulator.api.storage import create_storage_app
from emulator.config import Settings

CRN_A = "crn:v1:bluemix:public:quantum-computing:us-east:a/test:aaaaaaaa-0000-4000-8000-0000000a::"
CRN_B = "crn:v1:bluemix:public:quantum-computing:us-east:a/test:bbbbbbbb-0000-4000-8000-0000000b::"
INSTANCES = (f"team-a={CRN_A}", f"team-b={CRN_B}")
# The default pairs of the two instances (no --s3-credentials): team-a is the default instance.
KEY_A = ("emulator-team-a", "emulator-secret-team-a")
KEY_B = ("emulator-team-b", "emulator-secret-team-b")
BASE = "http://s3.test"


def storage_app(data_dir: Path, **settings: Any) -> ASGIApp:
    """The store of a server with instances team-a (default) and team-b."""
    return create_storage_app(Settings(data_dir=data_dir, instances=INSTANCES, **settings))


class _ClientSigner(S3SigV4Auth):
    """botocore's S3 signer; `payload` fixes x-amz-content-sha256 (streaming, unsigned) the way
    an SDK declares it, instead of hashing the body."""

    def __init__(self, key: tuple[str, str], payload: str | None, region: str) -> None:
        super().__init__(Credentials(*key), "s3", region)
        self._fixed = payload

    def payload(self, request: AWSRequest) -> str:
        return self._fixed if self._fixed is not None else str(super().payload(request))


def signed_request(
    method: str,
    path: str,
    key: tuple[str, str] | None = KEY_A,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> httpx.Request:
    """An httpx request as a SigV4 client sends it (`key=None`: unsigned)."""
    request = httpx.Request(
        method, BASE + path, content=content, headers=headers or {}, params=params
    )
    if key is not None:
        given = {k.lower(): v for k, v in (headers or {}).items()}
        request.headers.update(sign(method, str(request.url), given, key, content, region))
    return request


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    key: tuple[str, str],
    content: bytes | None = None,
    region: str = "us-east-1",
) -> dict[str, str]:
    """The Authorization, X-Amz-Date and X-Amz-Content-SHA256 headers botocore adds."""
    aws = AWSRequest(method=method, url=url, data=content or b"", headers=dict(headers))
    _ClientSigner(key, headers.get("x-amz-content-sha256"), region).add_auth(aws)
    return {
        name: aws.headers[name] for name in ("authorization", "x-amz-date", "x-amz-content-sha256")
    }


def send(app: ASGIApp, request: httpx.Request) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.send(request)

    return asyncio.run(go())


def call(
    app: ASGIApp,
    method: str,
    path: str,
    key: tuple[str, str] | None = KEY_A,
    **kwargs: Any,
) -> httpx.Response:
    """Send one header-signed request (by `key`; None: unsigned) to the app."""
    return send(app, signed_request(method, path, key, **kwargs))


def raw_call(app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Send a hand-made, signed ASGI request (headers as given, tiny body); return the status."""
    given = {k.decode(): v.decode() for k, v in [(b"host", b"s3.test"), *headers]}
    given["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    auth = sign(method, "http://s3.test" + path, given, KEY_A)
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in {**given, **auth}.items()],
        "server": ("s3.test", 80),
        "client": ("127.0.0.1", 1),
    }
    sent: list[Message] = []
    inbox = [{"type": "http.request", "body": b"tiny", "more_body": False}]

    async def receive() -> Message:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


def s3_client(endpoint: str, key: tuple[str, str] = KEY_A, verify: str | bool = True) -> Any:
    """A path-style SigV4 boto3 client for `endpoint`, signing with `key`."""
    session = boto3.session.Session(
        aws_access_key_id=key[0], aws_secret_access_key=key[1], region_name="us-east-1"
    )
    return session.client(
        "s3",
        endpoint_url=endpoint,
        verify=verify,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def presign(
    method: str, bucket: str, key: str, signer: tuple[str, str] = KEY_A, expires: int = 60
) -> str:
    """A presigned URL from boto3 for `BASE` (no request is made to sign one)."""
    client = s3_client(BASE, signer)
    return str(
        client.generate_presigned_url(
            method, Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )
    )


def send_url(app: ASGIApp, method: str, url: str, content: bytes | None = None) -> httpx.Response:
    """Send a (presigned) URL as is, as the emulator's worker does."""
    return send(app, httpx.Request(method, url, content=content))


class Served:
    """The app under uvicorn on a free loopback port, for clients that need real sockets."""

    def __init__(self, app: ASGIApp, **ssl: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", **ssl)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.clients: list[Any] = []

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn exited during startup"
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        scheme = "https" if self.server.config.ssl_certfile else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def s3(self, key: tuple[str, str] = KEY_A, verify: str | bool = True) -> Any:
        """A boto3 client for this server, closed before the server stops."""
        client = s3_client(self.url, key, verify)
        self.clients.append(client)
        return client

    def __exit__(self, *exc: object) -> None:
        # uvicorn's shutdown waits for the clients' pooled TLS connections to close.
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop within 10 s"
