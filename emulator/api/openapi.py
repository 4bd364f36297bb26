"""OpenAPI 3.1 documents of the emulated APIs, built from their route tables.

Each surface declares its endpoints once (`Endpoint`: path, method, handler, query specs, body
schema, status codes); its Starlette routes and its document are both made from that table, so
what is served and what is published cannot differ (tests/unit/test_openapi.py checks them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Route

from emulator.api.query import Param

Handler = Callable[..., Any]
_PATH_PARAM = re.compile(r"{(\w+)}")
_REASONS = {
    200: "OK",
    204: "No content",
    400: "Bad request: the field named in the message",
    401: "Not authenticated",
    403: "The instance is not accessible",
    404: "Not found",
    408: "The request body arrived too slowly",
    409: "Conflict with the current state",
    413: "The request body is too large",
    422: "A field does not match the schema",
    423: "The backend is reserved",
    429: "A limit was reached (see Retry-After)",
}


ERRORS_LIST: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "solution": {"type": "string"},
            "more_info": {"type": "string"},
        },
    },
}
"""IBM's `errors` member, in the envelopes of both APIs."""


@dataclass(frozen=True)
class Endpoint:
    """One operation: how it is routed and how it is documented."""

    method: str
    path: str
    handler: Handler
    summary: str
    query: Sequence[Param] = ()
    body: dict[str, Any] | None = None
    ok: int = 200
    ok_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    ok_media: tuple[str, ...] = ("application/json",)
    extra_ok: tuple[int, ...] = ()
    """Other success codes, without a body (e.g. 204 while a result does not exist yet)."""
    errors: tuple[int, ...] = ()
    public: bool = False
    tag: str = ""

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])

    def operation(self, error_ref: str, auth_errors: tuple[int, ...]) -> dict[str, Any]:
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(self.path)
        ]
        params += [p.schema() for p in self.query]
        ok: dict[str, Any] = {"description": _REASONS.get(self.ok, "OK")}
        if self.ok != 204:
            ok["content"] = {media: {"schema": self.ok_schema} for media in self.ok_media}
        responses: dict[str, Any] = {str(self.ok): ok}
        for code in self.extra_ok:
            responses[str(code)] = {"description": _REASONS.get(code, "OK")}
        codes = set(self.errors) | (set() if self.public else set(auth_errors))
        if self.body is not None:
            codes |= {400, 408, 413}
        if self.query:
            codes.add(400)
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _REASONS.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": error_ref}}},
            }
        op: dict[str, Any] = {
            "operationId": f"{self.method.lower()}_{_operation_name(self.path)}",
            "summary": self.summary,
            "responses": responses,
        }
        if self.tag:
            op["tags"] = [self.tag]
        if params:
            op["parameters"] = params
        if self.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": self.body}},
            }
        if self.public:
            op["security"] = []
        return op


def dispatch_routes(endpoints: Sequence[Endpoint], polled: Sequence[str]) -> list[Route]:
    """The endpoints' routes, the `polled` paths (GET) first: Starlette tries routes in order,
    a regex each, so a status poll should not be tried against every other route first.
    No two endpoints of one method match the same URL (tests/unit/test_openapi.py), so the
    order changes how soon a request's route is found, never which route it is."""
    first = [e for path in polled for e in endpoints if (e.method, e.path) == ("GET", path)]
    return [e.route() for e in first + [e for e in endpoints if e not in first]]


def _operation_name(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_") or "root"


def document(
    *,
    title: str,
    version: str,
    description: str,
    prefix: str,
    endpoints: Sequence[Endpoint],
    error_schema: dict[str, Any],
    auth_errors: tuple[int, ...] = (401,),
    extra_headers: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `endpoints` mounted at `prefix`."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation = endpoint.operation("#/components/schemas/Error", auth_errors)
        if extra_headers:
            operation.setdefault("parameters", []).extend(extra_headers)
        paths.setdefault(prefix + endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": {"Error": error_schema},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An IAM access token from POST /iam/identity/token",
                }
            },
        },
        "security": [{"bearer": []}],
    }
