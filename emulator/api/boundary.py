"""Pieces every API surface shares: the error boundary and body parsing."""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.api.jsonio import parse_json
from emulator.domain.errors import RequestTimeout, RequestTooLarge
from emulator.domain.jobs import Api, Owner
from emulator.services.access import AccessPolicy

log = logging.getLogger("emulator.api")

Renderer = Callable[[Request, Exception], Response]
T = TypeVar("T")


READ_THREADS = 4
"""Threads that serve store reads. SQLite reads in WAL mode never wait for a lock (PostgreSQL
reads take none), so a few threads keep both cores busy; more only queue for the GIL, which
the event loop needs too (40 such threads halved a job list's throughput and doubled its p99
under load). Writes, which can wait for SQLite's write lock, keep anyio's default pool."""
_read_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


async def store_read(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)`, a read of the store, in one of READ_THREADS threads."""
    loop = asyncio.get_running_loop()
    limiter = _read_limiters.get(loop)
    if limiter is None:
        limiter = _read_limiters[loop] = anyio.CapacityLimiter(READ_THREADS)
    return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=limiter)


def lookup(table: Mapping[type[BaseException], T], exc: BaseException) -> T | None:
    """`table`'s entry for the most specific class of `exc` (by its MRO, so the order of the
    table does not matter); None when no class of `exc` is in it."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


def renderer(
    table: Mapping[type[BaseException], tuple[int, str]],
    build: Callable[[int, str, str, Exception], Response],
) -> Renderer:
    """An API's error renderer: its table of (status, code) per error class and its envelope
    (`build(status, code, message, exc)`). Starlette's HTTP errors (404, 405) keep their
    status; any other exception is a 500 in the same envelope."""

    def render(request: Request, exc: Exception) -> Response:
        found = lookup(table, exc)
        if found is not None:
            return build(found[0], found[1], str(exc), exc)
        if isinstance(exc, HTTPException):
            detail = "Not found." if exc.status_code == 404 else str(exc.detail)
            return build(exc.status_code, str(exc.status_code), detail, exc)
        return build(500, "1500", "Internal error in the emulator; see its log.", exc)

    return render


class ErrorBoundary:
    """Turns any exception raised below it into the API's own error envelope.

    Domain errors become their mapped 4xx; anything else is logged and answered 500 in the
    same envelope, never as plain text and never by dropping the connection.
    """

    def __init__(self, app: ASGIApp, render: Renderer) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - this is the one place errors become responses
            if started:
                raise
            try:
                response = self.render(Request(scope, receive), exc)
            except Exception:  # noqa: BLE001 - a renderer defect must not become plain text
                log.exception("error renderer failed for %s", type(exc).__name__)
                response = self.render(Request(scope, receive), RuntimeError("renderer failed"))
            if response.status_code >= 500:
                log.error(
                    "unhandled error on %s %r",
                    scope.get("method"),
                    scope.get("path"),
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
            await response(scope, receive, send)


class Tenancy:
    """Resolves the bearer token and `Service-CRN` once per request, before any route runs.

    Sets `request.state.instance` and `request.state.owner` (the instance, through this API):
    every service call requires the owner, so no route can forget tenant isolation.
    """

    def __init__(self, app: ASGIApp, api: Api, public_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.api = api
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].endswith(self.public_paths):
            access: AccessPolicy = scope["app"].state.emulator.access
            authorization = crn = None
            # One pass over the raw headers (ASGI names are lower-case; as Starlette's
            # Headers.get, the first of repeated headers counts).
            for name, value in scope["headers"]:
                if name == b"authorization" and authorization is None:
                    authorization = value.decode("latin-1")
                elif name == b"service-crn" and crn is None:
                    crn = value.decode("latin-1")
            instance = access.resolve_instance(access.identify(authorization), crn)
            state = scope.setdefault("state", {})
            state["instance"] = instance
            state["owner"] = Owner(instance.crn, self.api)
        await self.app(scope, receive, send)


def _limits(request: Request) -> tuple[int, float]:
    settings = request.app.state.emulator.settings
    return settings.max_request_bytes, float(settings.request_read_timeout)


async def read_body(
    request: Request, limit_bytes: int | None = None, timeout: float | None = None
) -> bytes:
    """The raw body: 413 over `limit_bytes`, 408 if it takes longer than `timeout` seconds
    (both default to the server's `--max-request-mb` and `--request-read-timeout`)."""
    if limit_bytes is None or timeout is None:
        default_limit, default_timeout = _limits(request)
        limit_bytes = default_limit if limit_bytes is None else limit_bytes
        timeout = default_timeout if timeout is None else timeout
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise RequestTooLarge(f"Request body of {declared} bytes is over the {limit_bytes} limit.")
    chunks: list[bytes] = []
    size = 0

    async def receive_all() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit_bytes:
                raise RequestTooLarge(f"Request body is over the {limit_bytes} bytes limit.")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive_all(), timeout)
    except TimeoutError:
        raise RequestTimeout(f"The request body was not received within {timeout:g} s.") from None
    return b"".join(chunks)


async def until_disconnected(request: Request) -> None:
    """Completes when the client has gone (for a request whose body is read or empty): a held
    poll stops waiting for a client that will never read the answer."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


INLINE_PARSE_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop; larger ones in a worker thread, so one
big submission never stalls the requests of others while it is parsed."""


async def parse_body(raw: bytes) -> Any:
    """Strict JSON (see `jsonio`), off the event loop when the body is large."""
    if len(raw) <= INLINE_PARSE_BYTES:
        return parse_json(raw)
    return await run_in_threadpool(parse_json, raw)


async def read_json(
    request: Request, limit_bytes: int | None = None, timeout: float | None = None
) -> Any:
    """The request body as strict JSON; 413/408 as in `read_body`, 400 naming `body` (or the
    offending value's path) if it is not acceptable JSON."""
    return await parse_body(await read_body(request, limit_bytes, timeout))


async def read_optional_json(
    request: Request, limit_bytes: int | None = None, timeout: float | None = None
) -> Any:
    """As `read_json`, but an empty body reads as `{}` (routes whose body is optional)."""
    raw = await read_body(request, limit_bytes, timeout)
    return await parse_body(raw) if raw.strip() else {}
