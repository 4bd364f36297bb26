"""The control plane's OpenAPI document, built from one table (a test checks it covers every
admin route, so the two cannot drift)."""

from __future__ import annotations

from typing import Any

from emulator import __version__
from emulator.api.admin.guard import PUBLIC_READS, SAFE_METHODS

PREFIX = "/_emulator"

# (method, path, summary, example request body or None)
OPERATIONS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    (
        "GET",
        "/_emulator/health",
        "Liveness: status, version, workers (job counts: admin token)",
        None,
    ),
    (
        "GET",
        "/_emulator/info",
        "Version, default instance, whether API keys are required; with the admin token also "
        "instances, backends (state, queue), config, counts",
        None,
    ),
    ("GET", "/_emulator/openapi.json", "This document", None),
    (
        "POST",
        "/_emulator/reset",
        "Forget all state, or one instance's jobs and sessions",
        {"instance": "emulator-instance"},
    ),
    (
        "POST",
        "/_emulator/seed",
        "Deterministic job ids, sampling seeds and fault draws",
        {"seed": 42},
    ),
    ("GET", "/_emulator/jobs", "Jobs of every instance (?limit, state, instance, backend)", None),
    ("GET", "/_emulator/jobs/{job_id}", "One job: params and result summaries, log", None),
    ("POST", "/_emulator/jobs/{job_id}/release", "Release a job held by manual progression", None),
    (
        "POST",
        "/_emulator/release",
        "Release every held job (of one backend)",
        {"backend": "ibm_fez"},
    ),
    ("GET", "/_emulator/sessions", "Sessions of every instance", None),
    ("GET", "/_emulator/requests", "Journal of recent requests (?limit, api, method)", None),
    ("DELETE", "/_emulator/requests", "Clear the journal", None),
    ("GET", "/_emulator/progression", "Progression policies in force", None),
    (
        "PUT",
        "/_emulator/progression",
        "Set immediate | manual | timed, globally or per backend",
        {"mode": "manual", "backend": "ibm_fez", "release_after_polls": 3},
    ),
    ("GET", "/_emulator/outcomes", "Outcome rules still to fire", None),
    (
        "POST",
        "/_emulator/outcomes",
        "The next N matching jobs end this way",
        {
            "state": "cancelled",
            "reason_code": 1305,
            "reason": "Ran too long",
            "times": 1,
            "backend": "ibm_fez",
            "program_id": "sampler",
        },
    ),
    ("DELETE", "/_emulator/outcomes", "Remove every outcome rule", None),
    ("DELETE", "/_emulator/outcomes/{rule_id}", "Remove one outcome rule", None),
    ("GET", "/_emulator/faults", "HTTP fault rules, in match order", None),
    (
        "POST",
        "/_emulator/faults",
        "Add an HTTP fault rule (first match wins)",
        {
            "method": "POST",
            "path": "*/jobs",
            "api": "runtime",
            "status": 503,
            "times": 2,
            "retry_after": 1,
        },
    ),
    ("DELETE", "/_emulator/faults", "Remove every fault rule", None),
    ("DELETE", "/_emulator/faults/{rule_id}", "Remove one fault rule", None),
    ("GET", "/_emulator/backends", "Backends with state and queue length", None),
    (
        "PUT",
        "/_emulator/backends/{name}/state",
        "Set a backend online, paused or offline",
        {"state": "paused", "message": "maintenance"},
    ),
    ("GET", "/_emulator/reservations", "Direct Access reservations (configured and made)", None),
    (
        "POST",
        "/_emulator/reservations",
        "Reserve a backend (423 for other instances)",
        {"backend": "ibm_fez", "start": "2026-11-22T10:00:00Z", "end": "2026-11-22T11:00:00Z"},
    ),
    ("DELETE", "/_emulator/reservations/{rule_id}", "Remove a reservation", None),
    ("GET", "/_emulator/", "The dashboard (HTML)", None),
]


TOKEN = "adminToken"
SECURITY_SCHEMES = {
    TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "The server's --admin-token (EMULATOR_ADMIN_TOKEN); needed only when set",
    }
}


def _responses(method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK"},
        "400": {
            "description": "Invalid request, or a Host header this server does not answer to: "
            "{error: {status, message, field}}"
        },
        "404": {"description": "No such job, rule or backend"},
    }
    if not _public(method, path):
        responses["401"] = {"description": "The server has an admin token and it was not sent"}
    if method not in SAFE_METHODS:
        responses["403"] = {"description": "Cross-site request (Sec-Fetch-Site or Origin)"}
        responses["415"] = {"description": "A body that is not Content-Type: application/json"}
    return responses


def _public(method: str, path: str) -> bool:
    return method == "GET" and path.removeprefix(PREFIX) in PUBLIC_READS


def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, example in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": summary,
            # `{}`: also without the token (public reads; and any route when none is set).
            "security": [{}, {TOKEN: []}] if _public(method, path) else [{TOKEN: []}],
            "responses": _responses(method, path),
        }
        parameters = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in path.split("/")
            if part.startswith("{")
        ]
        if parameters:
            operation["parameters"] = parameters
        if example is not None:
            operation["requestBody"] = {
                "content": {"application/json": {"schema": {"type": "object"}, "example": example}}
            }
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "IBM Quantum emulator control plane", "version": __version__},
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES},
    }


OPENAPI = _document()
