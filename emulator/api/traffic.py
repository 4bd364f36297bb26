"""Every request passes here first: the request journal and HTTP fault injection.

The control plane itself (`/_emulator`) is never faulted nor journaled.
"""

from __future__ import annotations

import asyncio
import json
import time
from xml.sax.saxutils import escape

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.api.cloud import routes as cloud
from emulator.api.direct_access import errors as direct_access_errors
from emulator.api.runtime import errors as runtime_errors
from emulator.api.storage.app import is_s3_request
from emulator.services.traffic import FaultInjector, FaultRule, JournalEntry, RequestJournal

ADMIN_PREFIX = "/_emulator"


API_KEY = "emulator.api"
"""The scope key under which `api_of`'s answer is kept for the layers below the journal."""


def api_of(scope: Scope) -> str:
    """Which API a request is for: runtime, direct_access, iam, s3, cloud or admin (kept in
    the scope, so it is worked out once per request)."""
    known: str | None = scope.get(API_KEY)
    if known is None:
        known = scope[API_KEY] = _api_of(scope)
    return known


def _api_of(scope: Scope) -> str:
    path: str = scope.get("path", "")
    if path.startswith(ADMIN_PREFIX):
        return "admin"
    if is_s3_request(scope):
        return "s3"
    if path.startswith(cloud.IAM_PREFIX):
        return "iam"
    if path.startswith((cloud.SEARCH_PREFIX, cloud.CATALOG_PREFIX)):
        return "cloud"
    if path.startswith("/v1/") or path == "/v1":
        return "direct_access"
    return "runtime"


# -- the middleware --------------------------------------------------------------------------


class ConnectionDropped(Exception):
    """Raised after a partial response so the server closes the connection mid-reply."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:  # ASGI header names are lower-case
            return str(value.decode("latin-1"))
    return None


def fault_response(rule: FaultRule, api: str) -> Response:
    """The error the rule answers with, in the envelope of the API it hit."""
    status = rule.status or 503
    code = rule.code or str(status)
    message = rule.message or f"Injected fault: HTTP {status}"
    response: Response
    if api == "runtime":
        response = runtime_errors.envelope(status, code, message)
    elif api == "direct_access":
        response = direct_access_errors.envelope(status, code, message)
    elif api == "s3":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
            f"{'SlowDown' if status == 503 else 'InternalError'}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
        )
        response = Response(xml, status_code=status, media_type="application/xml")
    else:
        response = JSONResponse(
            {"errorCode": code, "errorMessage": message, "status_code": status},
            status_code=status,
        )
    if rule.retry_after is not None:
        response.headers["Retry-After"] = str(rule.retry_after)
    return response


class TrafficMiddleware:
    """Journal every request; apply the first fault rule that fires."""

    def __init__(self, app: ASGIApp, journal: RequestJournal, faults: FaultInjector) -> None:
        self.app = app
        self.journal = journal
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        method, path, api = scope["method"], scope["path"], api_of(scope)
        status: list[int] = []

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        # Most servers have no rules: skip the thread hop (a rule with `times` writes).
        rule = (
            await asyncio.to_thread(self.faults.pick, method, path, api)
            if self.faults.active
            else None
        )
        try:
            if rule is None:
                await self.app(scope, receive, recording_send)
            else:
                await self._apply(rule, api, scope, receive, send, recording_send, status)
        finally:
            if api != "admin":
                self.journal.add(
                    JournalEntry(
                        at=time.time(),
                        method=method,
                        path=path,
                        api=api,
                        status=status[0] if status else None,
                        duration_ms=round((time.monotonic() - started) * 1000, 3),
                        instance=_header(scope, b"service-crn"),
                        fault=None if rule is None else {"id": rule.id, "action": rule.action},
                    )
                )

    async def _apply(
        self,
        rule: FaultRule,
        api: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        recording_send: Send,
        status: list[int],
    ) -> None:
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.action == "delay":
            await self.app(scope, receive, recording_send)
        elif rule.action == "respond":
            await fault_response(rule, api)(scope, receive, recording_send)
        elif rule.action == "drop":
            await _drop(send, status)
        elif rule.action == "lost_response":
            # The request takes effect; its response never reaches the client.
            async def discard(message: Message) -> None:
                return None

            await self.app(scope, receive, discard)
            if rule.status is not None:
                await fault_response(rule, api)(scope, receive, recording_send)
            else:
                await _drop(send, status)


async def _drop(send: Send, status: list[int]) -> None:
    """Start a reply and break it off: the client sees the connection fail mid-response."""
    status.append(0)
    body = json.dumps({"dropped": True}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body) + 64).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body[:4], "more_body": True})
    raise ConnectionDropped("connection dropped by a fault rule")
