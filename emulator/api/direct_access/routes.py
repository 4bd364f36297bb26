"""Direct Access API routes (IBM Quantum System REST API). Parse, call the service, respond."""

from __future__ import annotations

import functools
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.api.boundary import ErrorBoundary, Tenancy, read_json, store_read
from emulator.api.direct_access import errors, schemas, views
from emulator.api.openapi import ERRORS_LIST, Endpoint, dispatch_routes, document
from emulator.api.state import owner_of, state_of
from emulator.domain.backends import ServedBackend
from emulator.domain.errors import BackendNotFound
from emulator.domain.jobs import Api, JobFilter

PAGE = 200


async def version(request: Request) -> Response:
    return JSONResponse({"version": views.API_VERSION})


async def versions(request: Request) -> Response:
    return JSONResponse({"versions": views.API_VERSIONS})


def _backend(request: Request):  # noqa: ANN202 - ServedBackend
    backend = state_of(request).backends.get(request.path_params["name"])
    if backend.mock:  # dry-run twins belong to the Runtime API only
        raise BackendNotFound(f"Backend {backend.name} not found.")
    return backend


def _locked(request: Request, name: str) -> bool:
    return state_of(request).jobs.reserved_against(name, owner_of(request).instance)


def _view(request: Request, backend: ServedBackend) -> dict[str, Any]:
    state = state_of(request).jobs.backend_state(backend.name)
    return views.backend_view(backend, _locked(request, backend.name), state)


async def list_backends(request: Request) -> Response:
    jobs = state_of(request).jobs
    availability = await store_read(jobs.backend_states)
    locked = await store_read(jobs.locked_backends, owner_of(request).instance)
    backends = [b for b in state_of(request).backends.all() if not b.mock]
    return JSONResponse(
        {
            "backends": [
                views.backend_view(b, b.name in locked, availability[b.name]) for b in backends
            ]
        }
    )


async def get_backend(request: Request) -> Response:
    backend = _backend(request)
    return JSONResponse(await store_read(_view, request, backend))


async def backend_configuration(request: Request) -> Response:
    backend = _backend(request)
    key = ("direct_access", "configuration", backend.name)
    return state_of(request).documents.response(
        request, key, lambda: backend.snapshot.configuration
    )


async def backend_properties(request: Request) -> Response:
    backend = _backend(request)
    return state_of(request).documents.response(
        request, ("direct_access", "properties", backend.name), lambda: backend.snapshot.properties
    )


async def backend_defaults(request: Request) -> Response:
    _backend(request)
    return JSONResponse({})  # no pulse defaults for simulated backends, as IBM's simulators


async def backend_lanes(request: Request) -> Response:
    _backend(request)
    lanes = state_of(request).settings.lanes_per_backend
    return JSONResponse(
        {"hpc_workload_manager": {"lanes": lanes}, "ibm_quantum_compute": {"lanes": 0}}
    )


async def create_job(request: Request) -> Response:
    body = await read_json(request)
    job_request = schemas.parse_job_request(body)
    await run_in_threadpool(
        state_of(request).jobs.create_direct_access_job, owner_of(request), job_request
    )
    return Response(status_code=204)


async def list_jobs(request: Request) -> Response:
    state = state_of(request)
    found: list[dict[str, object]] = []
    offset = 0
    while True:  # IBM's endpoint has no paging: every job of the caller, oldest first
        flt = JobFilter(limit=PAGE, offset=offset, descending=False)
        page, count = await store_read(state.jobs.list_jobs, owner_of(request), flt)
        found.extend(views.job_view(j) for j in page)
        offset += len(page)
        if not page or offset >= count:
            break
    return JSONResponse({"jobs": found})


async def poll_job(request: Request) -> Response:
    job = await run_in_threadpool(
        state_of(request).jobs.poll_job, owner_of(request), request.path_params["job_id"]
    )
    return JSONResponse(views.job_view(job))


async def delete_job(request: Request) -> Response:
    await run_in_threadpool(
        state_of(request).jobs.delete_job, owner_of(request), request.path_params["job_id"]
    )
    return Response(status_code=204)


async def cancel_job(request: Request) -> Response:
    await run_in_threadpool(
        state_of(request).jobs.cancel_job, owner_of(request), request.path_params["job_id"]
    )
    return Response(status_code=204)


# The one table: Starlette's routes and the OpenAPI document (GET /v1/openapi.json) come from it.
ENDPOINTS = [
    Endpoint("GET", "/backends", list_backends, "Backends and their status", tag="backends"),
    Endpoint("GET", "/backends/{name}", get_backend, "One backend", errors=(404,),
             tag="backends"),
    Endpoint(
        "GET", "/backends/{name}/configuration", backend_configuration, "Configuration",
        errors=(404,), tag="backends",
    ),
    Endpoint(
        "GET", "/backends/{name}/properties", backend_properties, "Calibration",
        errors=(404,), tag="backends",
    ),
    Endpoint(
        "GET", "/backends/{name}/defaults", backend_defaults, "Pulse defaults (none)",
        errors=(404,), tag="backends",
    ),
    Endpoint(
        "GET", "/backends/{name}/lanes", backend_lanes, "Execution lanes", errors=(404,),
        tag="backends",
    ),
    Endpoint(
        "POST", "/jobs", create_job, "Submit a job (input and results by presigned URL)",
        ok=204, body=schemas.JOB_REQUEST_SCHEMA, errors=(404, 409, 422, 423, 429), tag="jobs",
    ),
    Endpoint("GET", "/jobs", list_jobs, "Every job of the caller", tag="jobs"),
    Endpoint("GET", "/jobs/{job_id}", poll_job, "One job", errors=(404,), tag="jobs"),
    Endpoint(
        "DELETE", "/jobs/{job_id}", delete_job, "Delete an ended job (frees its lane)", ok=204,
        errors=(404, 409), tag="jobs",
    ),
    Endpoint(
        "POST", "/jobs/{job_id}/cancel", cancel_job, "Cancel a job", ok=204,
        errors=(404, 409), tag="jobs",
    ),
]
routes = dispatch_routes(ENDPOINTS, ["/jobs/{job_id}", "/jobs"])
VERSION_ENDPOINTS = [
    Endpoint("GET", "/version", version, "The API version", public=True, tag="versions"),
    Endpoint("GET", "/versions", versions, "Supported API versions", public=True,
             tag="versions"),
]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status_code", "title", "trace", "errors"],
    "properties": {
        "status_code": {"type": "integer"},
        "title": {"type": "string"},
        "trace": {"type": "string"},
        "correlation_id": {"type": "string"},
        "errors": ERRORS_LIST,
    },
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The emulated Direct Access API (IBM Quantum System REST API)."""
    doc = document(
        title="Direct Access API (IBM Quantum emulator)",
        version=views.API_VERSION,
        description="What the emulator serves under /v1 (and /version, /versions).",
        prefix="/v1",
        endpoints=ENDPOINTS,
        error_schema=ERROR_SCHEMA,
        extra_headers=[
            {
                "name": "Service-CRN",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        ],
    )
    versions_doc = document(
        title="", version="", description="", prefix="", endpoints=VERSION_ENDPOINTS,
        error_schema=ERROR_SCHEMA,
    )
    doc["paths"].update(versions_doc["paths"])
    return doc


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


routes.append(Route("/openapi.json", openapi_json))
version_routes = [endpoint.route() for endpoint in VERSION_ENDPOINTS]

middleware = [
    Middleware(ErrorBoundary, render=errors.render),
    Middleware(Tenancy, api=Api.DIRECT_ACCESS, public_paths=("/openapi.json",)),
]
