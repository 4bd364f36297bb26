"""`IBM-API-Version`: any value a client sends is accepted and served as the nearest version.

IBM dates its API versions; clients pin one in the header. The emulator never rejects a
version (an old client must keep working, a newer one must not break), and says in the
response header which version it answered with.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_VERSIONS = [
    {"version": "2025-01-01", "status": "deprecated", "sunset_date": "2026-06-01"},
    {"version": "2026-02-01", "status": "live"},
    {"version": "2026-03-15", "status": "live"},
    {"version": "2026-04-15", "status": "live"},
]
_SUPPORTED = sorted(date.fromisoformat(v["version"]) for v in API_VERSIONS)


@lru_cache(maxsize=256)  # clients send a handful of values; parsing one costs more than a poll
def served_version(requested: str | None) -> str:
    """The supported version nearest to `requested` (ties go to the older); latest if unusable."""
    try:
        asked = date.fromisoformat((requested or "").strip()[:10])
    except ValueError:
        return _SUPPORTED[-1].isoformat()
    nearest = min(_SUPPORTED, key=lambda v: (abs((v - asked).days), v))
    return nearest.isoformat()


class ApiVersion:
    """Adds `IBM-API-Version: <served>` to every Runtime API response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        requested = None
        for name, value in scope.get("headers", ()):
            if name == b"ibm-api-version":
                requested = value.decode("latin-1")
        served = served_version(requested)

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["IBM-API-Version"] = served
            await send(message)

        await self.app(scope, receive, send_with_version)
