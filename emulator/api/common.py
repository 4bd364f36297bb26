"""Pieces every API surface shares: the error boundary and body parsing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.auth import AccessPolicy
from emulator.jobs.errors import MalformedBody, RequestTimeout, RequestTooLarge
from emulator.jobs.model import Api, Owner

log = logging.getLogger("emulator.api")

Renderer = Callable[[Request, Exception], Response]


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
            response = self.render(Request(scope, receive), exc)
            if response.status_code >= 500:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
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
            request = Request(scope)
            access: AccessPolicy = request.app.state.emulator.access
            identity = access.identify(request.headers.get("authorization"))
            instance = access.resolve_instance(identity, request.headers.get("service-crn"))
            state = scope.setdefault("state", {})
            state["instance"] = instance
            state["owner"] = Owner(instance.crn, self.api)
        await self.app(scope, receive, send)


async def read_body(request: Request, limit_bytes: int, timeout: float) -> bytes:
    """The raw body: 413 over `limit_bytes`, 408 if it takes longer than `timeout` seconds."""
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


async def read_json(request: Request, limit_bytes: int, timeout: float = 30.0) -> Any:
    """The request body as JSON; 413/408 as in `read_body`, a 400 naming `body` if not JSON."""
    raw = await read_body(request, limit_bytes, timeout)
    if not raw.strip():
        raise MalformedBody("body", "a JSON body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBody("body", f"not valid JSON ({exc})") from None
