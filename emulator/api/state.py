"""The app's service container, built once in the lifespan, and the per-request accessors every
route uses (the container, the caller's instance and owner) — one copy for every surface."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from emulator.config import Instance, Settings
from emulator.domain.backends import BackendRegistry
from emulator.domain.jobs import Owner
from emulator.services.access import AccessPolicy
from emulator.services.control import ControlService
from emulator.services.hooks import ExecutionHooks
from emulator.services.jobs import JobService
from emulator.services.sessions import SessionService


@dataclass
class EmulatorState:
    """What routes may use: settings and services; never the store or the worker pool."""

    settings: Settings
    access: AccessPolicy
    backends: BackendRegistry
    jobs: JobService
    sessions: SessionService
    control: ControlService
    execution: ExecutionHooks
    documents: Documents = field(default_factory=lambda: Documents())


def state_of(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def instance_of(request: Request) -> Instance:
    """The caller's instance, resolved by the Tenancy middleware."""
    instance: Instance = request.state.instance
    return instance


def owner_of(request: Request) -> Owner:
    """The caller's instance through this API: every service call about jobs needs it."""
    owner: Owner = request.state.owner
    return owner


RENDERED = 20_000


def encode_json(value: Any) -> bytes:
    """JSON as Starlette's JSONResponse renders it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class Documents:
    """Serialised JSON of what never changes while the server runs (backend configurations
    and properties): encoded once, served with an ETag, 304 to a client that has it."""

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, ...], tuple[bytes, str]] = {}
        self._rendered: dict[tuple[int, str], tuple[object, bytes]] = {}

    def rendered(self, value: object, build: Callable[[], Any], view: str = "") -> bytes:
        """The JSON of an immutable `value` (a final job's snapshot from the store's cache),
        encoded once per `view` of it while that same object is what the store hands out."""
        key = (id(value), view)
        found = self._rendered.get(key)
        if found is not None and found[0] is value:
            return found[1]
        body = encode_json(build())
        if len(self._rendered) >= RENDERED:
            self._rendered.clear()
        self._rendered[key] = (value, body)  # holding `value` keeps its id unique
        return body

    def response(
        self, request: Request, key: tuple[str, ...], build: Callable[[], Any]
    ) -> Response:
        found = self._bodies.get(key)
        if found is None:
            body = encode_json(build())
            found = (body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
            self._bodies[key] = found
        body, etag = found
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)
