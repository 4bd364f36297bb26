"""`IBM-API-Version`: every documented version of the Runtime API, and what each changes.

IBM dates its API versions; clients pin one in the header. The emulator never rejects a
version (an old client must keep working, a newer one must not break): a date is served as
the version in force then, and the response header says which version answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class Version:
    """One dated version of IBM's Runtime API and its lifecycle (reference api-2026-12.md)."""

    version: str
    status: str
    sunset_date: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"version": self.version, "status": self.status}
        if self.sunset_date:
            out["sunset_date"] = self.sunset_date
        return out


VERSIONS = (
    Version("2024-01-01", "deprecated"),
    Version("2025-01-01", "deprecated", "2026-06-01"),
    Version("2025-05-01", "deprecated", "2027-01-01"),
    Version("2026-02-01", "deprecated", "2027-02-01"),
    Version("2026-02-15", "deprecated"),
    Version("2026-03-15", "deprecated"),
    Version("2026-04-15", "current"),
)
API_VERSIONS = [v.to_json() for v in VERSIONS]
LATEST = VERSIONS[-1].version
DEFAULT_VERSION = LATEST
"""What a request without `IBM-API-Version` is answered with: the current version (as the
Direct Access API documents for itself; qiskit-ibm-runtime ≥ 0.48 sends 2026-04-15)."""

# The version from which each documented change of the response shapes applies: one table,
# read by the views (`since(version, CHANGE)`).
BACKENDS_AS_OBJECTS = "2025-01-01"
"""`GET /backends`: `devices` as objects; before, a list of names."""
TRANSPILED_CIRCUITS_REMOVED = "2026-02-01"
"""`GET /jobs/{id}/transpiled_circuits` gone (the emulator never had transpiled circuits)."""
VERSIONS_AS_OBJECTS = "2026-02-15"
"""`GET /versions`: objects {version, status, sunset_date}; before, strings (inferred date:
the 2026-02-01 docs show strings, the schema rework of 2026-02-15 objects)."""
NO_BSS_NOR_USAGE_SECONDS = "2026-03-15"
"""`GET /jobs` and `/jobs/{id}/metrics` stop returning `bss`, `usage.quantum_seconds`,
`usage.seconds`."""
EXECUTION_TIME_AT_ROOT = "2026-04-15"
"""`circuits_execution_time_ns` leaves `usage` for the root of `/metrics`."""
USAGE_VALUE = "2026-04-15"
"""Resource units (preview): `usage.value` on jobs, metrics and workloads. The emulator counts
one unit per second of usage (inferred: IBM does not document the rate)."""

_SUPPORTED = [date.fromisoformat(v.version) for v in VERSIONS]


def since(version: str, change: str) -> bool:
    """Whether `version` has the change that began at `change` (ISO dates compare as text)."""
    return version >= change


@lru_cache(maxsize=256)  # clients send a handful of values; parsing one costs more than a poll
def served_version(requested: str | None) -> str:
    """The version in force at the `requested` date: the latest one not after it (the first
    for an earlier date); DEFAULT_VERSION without a usable header."""
    try:
        asked = date.fromisoformat((requested or "").strip()[:10])
    except ValueError:
        return DEFAULT_VERSION
    older = [v for v in _SUPPORTED if v <= asked]
    return (older[-1] if older else _SUPPORTED[0]).isoformat()


def version_of(request: Request) -> str:
    """The version the ApiVersion middleware chose for this request."""
    return str(request.scope.get("state", {}).get("api_version", DEFAULT_VERSION))


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
        scope.setdefault("state", {})["api_version"] = served

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["IBM-API-Version"] = served
            await send(message)

        await self.app(scope, receive, send_with_version)
