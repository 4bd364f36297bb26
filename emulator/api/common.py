"""Pieces every API surface shares: the error boundary and body parsing."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.jobs.errors import InvalidRequest, RequestTooLarge

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


async def read_json(request: Request, limit_bytes: int) -> Any:
    """The request body as JSON; 413 over `limit_bytes`, a 400 naming `body` if not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise RequestTooLarge(f"Request body of {declared} bytes is over the {limit_bytes} limit.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise RequestTooLarge(f"Request body is over the {limit_bytes} bytes limit.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("body", "a JSON body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest("body", f"not valid JSON ({exc})") from None
