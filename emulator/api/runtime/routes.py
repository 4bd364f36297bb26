"""Qiskit Runtime REST API routes (relative to `…/api/v1`). Parse, call the service, respond."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from emulator.api.boundary import (
    ErrorBoundary,
    Tenancy,
    read_json,
    store_read,
    until_disconnected,
)
from emulator.api.openapi import ERRORS_LIST, Endpoint, dispatch_routes, document
from emulator.api.query import query_of
from emulator.api.runtime import errors, schemas, views
from emulator.api.runtime.versions import (
    API_VERSIONS,
    BACKENDS_AS_OBJECTS,
    EXECUTION_TIME_AT_ROOT,
    LATEST,
    NO_BSS_NOR_USAGE_SECONDS,
    TRANSPILED_CIRCUITS_REMOVED,
    USAGE_VALUE,
    VERSIONS_AS_OBJECTS,
    ApiVersion,
    since,
    version_of,
)
from emulator.api.state import encode_json, instance_of, owner_of, state_of
from emulator.domain import analytics
from emulator.domain.admission import usage_period
from emulator.domain.analytics import UsageRow
from emulator.domain.backends import ServedBackend
from emulator.domain.errors import BackendDataNotFound, InvalidRequest, ResultsAlreadyRead
from emulator.domain.ids import subscription_id
from emulator.domain.jobs import Api, utcnow
from emulator.domain.workloads import Cursor, Workload

PUBLIC_PATHS = ("/versions",)
RUNTIME_PREFIX = "/api/v1"


# -- backends --------------------------------------------------------------------------------


async def list_backends(request: Request) -> Response:
    state = state_of(request)
    # Mock (dry-run) backends only when asked for; the client always asks, then hides them
    # itself unless its caller wants them.
    with_mocks = query_of(request, schemas.BACKENDS_QUERY)["include_mocks"]
    shown = [b for b in state.backends.all() if with_mocks or not b.mock]
    if not since(version_of(request), BACKENDS_AS_OBJECTS):
        # API 2024-01-01: the names only (what clients up to 0.40 read without a header).
        return JSONResponse({"devices": [b.name for b in shown]})
    queued, availability = await store_read(state.jobs.backends_overview)
    devices = [views.device_view(b, queued.get(b.name, 0), availability[b.name]) for b in shown]
    return JSONResponse({"devices": devices})


def _check_calibration(backend: ServedBackend, asked: str | None) -> None:
    """The emulator serves one calibration per backend; another id is IBM's not-found."""
    if asked is not None and asked != backend.snapshot.calibration_id:
        raise BackendDataNotFound(
            f"No calibration {asked} for {backend.name}: its calibration is "
            f"{backend.snapshot.calibration_id}."
        )


async def backend_configuration(request: Request) -> Response:
    state = state_of(request)
    backend = state.backends.get(request.path_params["name"])
    _check_calibration(backend, query_of(request, schemas.CONFIGURATION_QUERY)["calibration_id"])
    return state.documents.response(
        request, ("runtime", "configuration", backend.name), lambda: backend.snapshot.configuration
    )


async def backend_properties(request: Request) -> Response:
    backend = state_of(request).backends.get(request.path_params["name"])
    query = query_of(request, schemas.PROPERTIES_QUERY)
    _check_calibration(backend, query["calibration_id"])
    asked = query["updated_before"]
    if asked is not None:
        # The emulator has one calibration per backend: served for any later date.
        calibrated = backend.snapshot.last_update
        if calibrated is not None and asked < calibrated:
            raise BackendDataNotFound(
                f"No properties of {backend.name} before {request.query_params['updated_before']}"
                f": its calibration is from {backend.snapshot.properties['last_update_date']}."
            )
    return state_of(request).documents.response(
        request, ("runtime", "properties", backend.name), lambda: backend.snapshot.properties
    )


async def backend_status(request: Request) -> Response:
    state = state_of(request)
    backend = state.backends.get(request.path_params["name"])
    queued, availability = await store_read(state.jobs.backend_status, backend.name)
    return JSONResponse(views.status_view(backend, queued, availability))


async def backend_defaults(request: Request) -> Response:
    state_of(request).backends.get(request.path_params["name"])
    return JSONResponse({})


async def instance_details(request: Request) -> Response:
    return JSONResponse(views.instance_view(instance_of(request)))


async def instance_usage(request: Request) -> Response:
    state = state_of(request)
    instance = instance_of(request)
    report = await store_read(state.jobs.usage, owner_of(request))
    return JSONResponse(views.usage_view(instance, report))


async def instance_configuration(request: Request) -> Response:
    limit = await store_read(state_of(request).jobs.instance_limit, owner_of(request))
    return JSONResponse(views.configuration_view(limit))


async def replace_instance_configuration(request: Request) -> Response:
    seconds = schemas.parse_instance_configuration(await _read_json(request))
    await run_in_threadpool(
        state_of(request).jobs.replace_instance_limit, owner_of(request), seconds
    )
    return Response(status_code=204)


async def get_account(request: Request) -> Response:
    """The plans of the server's instances in that account; an account without any gets the
    default configuration (no plans), as IBM documents."""
    account = schemas.account_id(request.path_params["account_id"])
    plan_id = query_of(request, schemas.ACCOUNT_QUERY)["plan_id"]
    state = state_of(request)
    instances = [i for i in state.settings.instance_list if views.account_id(i.crn) == account]
    limits = await store_read(state.jobs.instance_limits, [i.crn for i in instances])
    settings = state.settings
    body = views.account_view(
        instances,
        limits,
        state.backends.real_names(),
        settings.session_max_ttl,
        settings.session_interactive_ttl,
        plan_id,
    )
    return JSONResponse(body)


# -- analytics --------------------------------------------------------------------------------


async def _usage_rows(request: Request, query: dict[str, Any]) -> tuple[list[UsageRow], Any, Any]:
    """The caller's instance's ended jobs the filters select, and the interval they cover.
    Analytics serve the caller's own instance: other instances in `instance` select nothing."""
    instance = instance_of(request)
    now = utcnow()
    start = query["interval_start"] or usage_period(now)[0]
    end = query["interval_end"] or now + timedelta(seconds=1)
    if start >= end:
        raise InvalidRequest("interval_start", "must be before interval_end")
    plan = instance.plan
    excluded = (
        (query["instance"] and instance.crn not in query["instance"])
        or query["user_id"]
        or (query["plan"] and plan not in query["plan"])
        or (query["subscription_id"] and subscription_id(plan) not in query["subscription_id"])
    )
    if excluded:
        return [], start, end
    rows = await store_read(
        state_of(request).jobs.usage_rows,
        owner_of(request),
        plan,
        start,
        end,
        query["backend"] or None,
    )
    return rows, start, end


async def analytics_filters(request: Request) -> Response:
    query_of(request, schemas.ANALYTICS_FILTERS_QUERY)
    backends = state_of(request).backends.real_names()
    return JSONResponse(views.analytics_filters_view(instance_of(request), backends))


async def analytics_usage(request: Request) -> Response:
    rows, _, _ = await _usage_rows(request, query_of(request, schemas.ANALYTICS_USAGE_QUERY))
    return JSONResponse(analytics.metrics(rows))


async def analytics_usage_grouped(request: Request) -> Response:
    query = query_of(request, schemas.ANALYTICS_GROUPED_QUERY)
    rows, _, _ = await _usage_rows(request, query)
    return JSONResponse({"data": analytics.grouped(rows, query["group_by"])})


async def analytics_usage_by_date(request: Request) -> Response:
    query = query_of(request, schemas.ANALYTICS_BY_DATE_QUERY)
    rows, start, end = await _usage_rows(request, query)
    data = analytics.grouped_by_date(rows, query["group_by"], start, end)
    return JSONResponse(views.usage_by_date_view(start, end, data))


async def versions(request: Request) -> Response:
    if since(version_of(request), VERSIONS_AS_OBJECTS):
        return JSONResponse({"versions": API_VERSIONS})
    return JSONResponse({"versions": [v["version"] for v in API_VERSIONS]})


# -- jobs ------------------------------------------------------------------------------------


async def _read_json(request: Request) -> Any:
    return await read_json(request)


async def create_job(request: Request) -> Response:
    body = await _read_json(request)
    job_request = schemas.parse_job_request(body, request.headers.get("x-qx-client-application"))
    job = await run_in_threadpool(state_of(request).jobs.create_job, owner_of(request), job_request)
    answer: dict[str, Any] = {"id": job.id, "backend": job.backend}
    if job.session_id:
        answer["session_id"] = job.session_id
    if job.private:
        answer["private"] = True
    return JSONResponse(answer)


async def list_jobs(request: Request) -> Response:
    state = state_of(request)
    mocks = state.backends.mock_names()
    flt, exclude_params = schemas.job_filter(query_of(request, schemas.JOB_LIST_QUERY), mocks)
    jobs, count = await store_read(
        state.jobs.list_jobs, owner_of(request), flt, not exclude_params
    )
    rest = {"count": count, "limit": flt.limit, "offset": flt.offset}
    version = version_of(request)
    if not exclude_params or version != LATEST:
        # Only the current version's views are encoded once and kept.
        return JSONResponse(
            {
                "jobs": [views.listed_job_view(j, not exclude_params, version) for j in jobs],
                **rest,
            }
        )
    # Final jobs are mostly the store cache's own objects, their views encoded once (as for
    # a status poll): the page is those bytes joined, in JSONResponse's own format.
    parts = [
        state.documents.rendered(
            j, functools.partial(views.listed_job_view, j, False, LATEST), view="listed"
        )
        if j.state.terminal
        else encode_json(views.listed_job_view(j, False, LATEST))
        for j in jobs
    ]
    body = b'{"jobs":[' + b",".join(parts) + b"]," + encode_json(rest)[1:]
    return Response(body, media_type="application/json")


async def list_workloads(request: Request) -> Response:
    state = state_of(request)
    mocks = state.backends.mock_names()
    query = query_of(request, schemas.WORKLOADS_QUERY)
    flt = schemas.workload_filter(query, mocks)
    page = await store_read(state.jobs.list_workloads, owner_of(request), flt)
    instance = instance_of(request).crn
    body: dict[str, Any] = {
        "workloads": [
            views.workload_view(w, instance, version_of(request)) for w in page.workloads
        ],
        "total_count": page.total,
        "limit": flt.limit,
    }
    # Cursors continue from the page's ends; every other query parameter is kept.
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("next", "previous")]
    if page.has_next and page.workloads:
        last = page.workloads[-1]
        body["next"] = {"href": _page_href(request, kept, "next", last)}
    if page.has_previous and page.workloads:
        first = page.workloads[0]
        body["previous"] = {"href": _page_href(request, kept, "previous", first)}
    return JSONResponse(body)


def _page_href(request: Request, kept: list[tuple[str, str]], name: str, at: Workload) -> str:
    query = urlencode([*kept, (name, Cursor(at.created, at.id).encode())])
    return str(request.url.replace(query=query))


async def job_status(request: Request) -> Response:
    exclude = query_of(request, schemas.JOB_QUERY)["exclude_params"]
    state = state_of(request)
    job = await state.jobs.job_status(
        owner_of(request),
        request.path_params["job_id"],
        not exclude,
        state.settings.status_hold_ms / 1000,
        abandoned=lambda: until_disconnected(request),
    )
    version = version_of(request)
    if exclude and job.state.terminal and version == LATEST:
        # A final job, most likely the store cache's own object: its view is encoded once
        # (in the current version's shape; older versions are rendered per request).
        body = state.documents.rendered(job, lambda: views.job_view(job, include_params=False))
        return Response(body, media_type="application/json")
    return JSONResponse(views.job_view(job, include_params=not exclude, version=version))


async def get_result(request: Request) -> Response:
    try:
        job, text = await store_read(
            state_of(request).jobs.get_result, owner_of(request), request.path_params["job_id"]
        )
    except ResultsAlreadyRead:
        # A private job's results are deleted as they are read: IBM's "final result not
        # found", which the client reads as no result (its own integration test says so).
        return Response(status_code=204)
    if text is None:
        # IBM: 204 "Job's final result not found" while there is nothing yet.
        return Response(status_code=204)
    # IBM's spec types the result as a string, served as text: qrmi's generated client
    # parses a JSON body as a JSON string and fails on the object; qiskit-ibm-runtime reads
    # the text whatever the type.
    return Response(text, media_type="text/plain")


async def cancel_job(request: Request) -> Response:
    await run_in_threadpool(
        state_of(request).jobs.cancel_job, owner_of(request), request.path_params["job_id"]
    )
    return Response(status_code=204)


async def delete_job(request: Request) -> Response:
    await run_in_threadpool(
        state_of(request).jobs.delete_job, owner_of(request), request.path_params["job_id"]
    )
    return Response(status_code=204)


async def get_logs(request: Request) -> Response:
    _, events = await store_read(
        state_of(request).jobs.get_logs, owner_of(request), request.path_params["job_id"]
    )
    return PlainTextResponse(views.logs_view(events))


async def interim_results(request: Request) -> Response:
    """Clients up to 0.2x read interim results; the primitives publish none, so a job's are
    the empty text (the client reads that as None)."""
    state = state_of(request)
    await store_read(state.jobs.get_job, owner_of(request), request.path_params["job_id"])
    return PlainTextResponse("")


async def transpiled_circuits(request: Request) -> Response:
    """Until API 2026-02-01: the emulator transpiles nothing, so a job's are the empty text
    (inferred); since then the endpoint is gone, as on IBM."""
    if since(version_of(request), TRANSPILED_CIRCUITS_REMOVED):
        raise HTTPException(404)
    state = state_of(request)
    await store_read(state.jobs.get_job, owner_of(request), request.path_params["job_id"])
    return PlainTextResponse("")


async def job_metrics(request: Request) -> Response:
    job = await store_read(
        state_of(request).jobs.get_job, owner_of(request), request.path_params["job_id"]
    )
    return JSONResponse(views.metrics_view(job, version_of(request)))


async def replace_tags(request: Request) -> Response:
    body = await _read_json(request)
    if not isinstance(body, dict) or "tags" not in body:
        raise InvalidRequest("tags", 'is required: {"tags": [...]}')
    tags = schemas.parse_tags(body["tags"])
    await run_in_threadpool(
        state_of(request).jobs.replace_tags, owner_of(request), request.path_params["job_id"], tags
    )
    return Response(status_code=204)


async def search_tags(request: Request) -> Response:
    search = query_of(request, schemas.TAGS_QUERY)["search"]
    tags = await store_read(state_of(request).jobs.search_tags, owner_of(request), search)
    return JSONResponse({"tags": tags})


# -- sessions and batches -----------------------------------------------------------------------


async def create_session(request: Request) -> Response:
    session_request = schemas.parse_session_request(await _read_json(request))
    session = await run_in_threadpool(
        state_of(request).sessions.create_session, owner_of(request).instance, session_request
    )
    return JSONResponse(views.session_view(session, utcnow()))


async def get_session(request: Request) -> Response:
    session = await store_read(
        state_of(request).sessions.get_session,
        owner_of(request).instance,
        request.path_params["session_id"],
    )
    return JSONResponse(views.session_view(session, utcnow()))


async def set_accepting(request: Request) -> Response:
    accepting = schemas.parse_session_update(await _read_json(request))
    await run_in_threadpool(
        state_of(request).sessions.set_accepting,
        owner_of(request).instance,
        request.path_params["session_id"],
        accepting,
    )
    return Response(status_code=204)


async def cancel_session(request: Request) -> Response:
    await run_in_threadpool(
        state_of(request).sessions.cancel_session,
        owner_of(request).instance,
        request.path_params["session_id"],
    )
    return Response(status_code=204)


_JOB = {"type": "object", "required": ["id", "backend", "state", "status", "program"]}
_TEXT = ("text/plain",)
# The one table: Starlette's routes and the OpenAPI document (GET /api/openapi.json) come from it.
ENDPOINTS = [
    Endpoint(
        "GET", "/backends", list_backends, "Backends: names, status, queue",
        query=schemas.BACKENDS_QUERY, tag="backends",
    ),
    Endpoint(
        "GET", "/backends/{name}/configuration", backend_configuration,
        "A backend's configuration", query=schemas.CONFIGURATION_QUERY, errors=(404,),
        tag="backends",
    ),
    Endpoint(
        "GET", "/backends/{name}/properties", backend_properties, "A backend's calibration",
        query=schemas.PROPERTIES_QUERY, errors=(404,), tag="backends",
    ),
    Endpoint(
        "GET", "/backends/{name}/status", backend_status, "A backend's status and queue",
        errors=(404,), tag="backends",
    ),
    Endpoint(
        "GET", "/backends/{name}/defaults", backend_defaults, "Pulse defaults (none)",
        errors=(404,), tag="backends",
    ),
    Endpoint(
        "GET", "/workloads", list_workloads, "The instance's jobs and sessions, cursor-paged",
        query=schemas.WORKLOADS_QUERY, tag="workloads",
        ok_schema={"type": "object", "required": ["workloads", "total_count", "limit"]},
    ),
    Endpoint(
        "GET", "/instance", instance_details,
        "The instance (clients up to 0.31 read `qctrl_enabled`)", tag="instances",
    ),
    Endpoint("GET", "/instances/usage", instance_usage, "The instance's usage", tag="instances"),
    Endpoint(
        "GET", "/instances/configuration", instance_configuration,
        "The instance's usage limit in force", tag="instances",
    ),
    Endpoint(
        "PUT", "/instances/configuration", replace_instance_configuration,
        "Set the instance's usage limit (null removes it)", ok=204,
        body=schemas.INSTANCE_CONFIGURATION_SCHEMA, errors=(409,), tag="instances",
    ),
    Endpoint(
        "GET", "/analytics/filters", analytics_filters, "What the analytics can be filtered by",
        query=schemas.ANALYTICS_FILTERS_QUERY, tag="analytics",
        ok_schema={"type": "object", "required": ["backends", "instances", "users", "plans",
                                                  "subscriptions"]},
    ),
    Endpoint(
        "GET", "/analytics/usage", analytics_usage, "Usage metrics of the instance's ended jobs",
        query=schemas.ANALYTICS_USAGE_QUERY, tag="analytics",
        ok_schema={"type": "object", "required": ["usage", "jobs", "queue_time"]},
    ),
    Endpoint(
        "GET", "/analytics/usage_grouped", analytics_usage_grouped, "Usage metrics per group",
        query=schemas.ANALYTICS_GROUPED_QUERY, tag="analytics",
        ok_schema={"type": "object", "required": ["data"]},
    ),
    Endpoint(
        "GET", "/analytics/usage_grouped_by_date", analytics_usage_by_date,
        "Usage metrics per group and day", query=schemas.ANALYTICS_BY_DATE_QUERY,
        tag="analytics",
        ok_schema={"type": "object", "required": ["interval_start", "interval_end", "data"]},
    ),
    Endpoint(
        "GET", "/accounts/{account_id}", get_account, "The account's plan configurations",
        query=schemas.ACCOUNT_QUERY, ok_schema={"type": "object", "required": ["plans"]},
        tag="accounts",
    ),
    Endpoint("GET", "/versions", versions, "API versions", public=True, tag="versions"),
    Endpoint(
        "POST", "/jobs", create_job, "Submit a job", body=schemas.JOB_REQUEST_SCHEMA,
        ok_schema={"type": "object", "required": ["id", "backend"]},
        errors=(404, 409, 429), tag="jobs",
    ),
    Endpoint(
        "GET", "/jobs", list_jobs, "The instance's jobs", query=schemas.JOB_LIST_QUERY,
        ok_schema={"type": "object", "required": ["jobs", "count", "limit", "offset"]},
        tag="jobs",
    ),
    Endpoint(
        "GET", "/jobs/{job_id}", job_status, "A job's status and details", query=schemas.JOB_QUERY,
        ok_schema=_JOB, errors=(404,), tag="jobs",
    ),
    Endpoint(
        "DELETE", "/jobs/{job_id}", delete_job, "Delete an ended job", ok=204,
        errors=(404, 409), tag="jobs",
    ),
    Endpoint(
        "GET", "/jobs/{job_id}/results", get_result,
        "Results (JSON) of a completed job; text for a failed one; 204 before",
        ok_schema={}, ok_media=("application/json", "text/plain"), extra_ok=(204,),
        errors=(404,), tag="jobs",
    ),
    Endpoint(
        "POST", "/jobs/{job_id}/cancel", cancel_job, "Cancel a queued or running job", ok=204,
        errors=(404, 409), tag="jobs",
    ),
    Endpoint(
        "GET", "/jobs/{job_id}/logs", get_logs, "A job's log", ok_schema={"type": "string"},
        ok_media=_TEXT, errors=(404,), tag="jobs",
    ),
    Endpoint(
        "GET", "/jobs/{job_id}/interim_results", interim_results,
        "Interim results (the primitives publish none: empty text)",
        ok_schema={"type": "string"}, ok_media=_TEXT, errors=(404,), tag="jobs",
    ),
    Endpoint(
        "GET", "/jobs/{job_id}/transpiled_circuits", transpiled_circuits,
        "Transpiled circuits, until API version 2026-02-01 (empty: nothing is transpiled)",
        ok_schema={"type": "string"}, ok_media=_TEXT, errors=(404,), tag="jobs",
    ),
    Endpoint(
        "GET", "/jobs/{job_id}/metrics", job_metrics, "A job's timestamps and usage",
        errors=(404,), tag="jobs",
    ),
    Endpoint(
        "PUT", "/jobs/{job_id}/tags", replace_tags, "Replace a job's tags", ok=204,
        body=schemas.TAGS_SCHEMA, errors=(404,), tag="jobs",
    ),
    Endpoint("GET", "/tags", search_tags, "Tags containing a text", query=schemas.TAGS_QUERY,
             tag="jobs"),
    Endpoint(
        "POST", "/sessions", create_session, "Open a session or batch",
        body=schemas.SESSION_REQUEST_SCHEMA, errors=(404, 409), tag="sessions",
    ),
    Endpoint(
        "GET", "/sessions/{session_id}", get_session, "A session's details", errors=(404,),
        tag="sessions",
    ),
    Endpoint(
        "PATCH", "/sessions/{session_id}", set_accepting, "Stop or resume accepting jobs",
        ok=204, body=schemas.SESSION_UPDATE_SCHEMA, errors=(404, 409), tag="sessions",
    ),
    Endpoint(
        "DELETE", "/sessions/{session_id}/close", cancel_session,
        "Close a session now; its queued jobs are cancelled", ok=204, errors=(404, 409),
        tag="sessions",
    ),
]
routes = dispatch_routes(ENDPOINTS, ["/jobs/{job_id}", "/jobs", "/backends/{name}/status"])

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["errors", "trace", "status_code"],
    "properties": {
        "errors": ERRORS_LIST,
        "trace": {"type": "string"},
        "status_code": {"type": "integer"},
    },
}


# Endpoints that exist in some versions only: (first version, first version without it).
_IN_VERSIONS = {("GET", "/jobs/{job_id}/transpiled_circuits"): (None, TRANSPILED_CIRCUITS_REMOVED)}
_CHANGES = (
    (BACKENDS_AS_OBJECTS, "GET /backends lists devices as objects (before: names)"),
    (TRANSPILED_CIRCUITS_REMOVED, "GET /jobs/{id}/transpiled_circuits removed"),
    (VERSIONS_AS_OBJECTS, "GET /versions answers objects {version, status, sunset_date}"),
    (NO_BSS_NOR_USAGE_SECONDS, "jobs and metrics drop bss, usage.quantum_seconds, usage.seconds"),
    (EXECUTION_TIME_AT_ROOT, "circuits_execution_time_ns moves to the root of /metrics"),
    (USAGE_VALUE, "usage.value (resource units, preview) on jobs, metrics and workloads"),
)


def _served_in(endpoint: Endpoint, version: str) -> bool:
    first, gone = _IN_VERSIONS.get((endpoint.method, endpoint.path), (None, None))
    return (first is None or since(version, first)) and (gone is None or not since(version, gone))


@functools.cache
def openapi_document(version: str = LATEST) -> dict[str, Any]:
    """The emulated Qiskit Runtime REST API (IBM Quantum Compute Service REST API) as of API
    `version`: its endpoints, and the shape changes in force listed in the description."""
    in_force = [text for change, text in _CHANGES if since(version, change)]
    description = (
        "What the emulator serves under /api/v1 (any prefix ending in /api/v1), for requests "
        f"with IBM-API-Version {version}. Changes in force: "
        + ("; ".join(in_force) if in_force else "none (the first version)")
        + "."
    )
    return document(
        title="Qiskit Runtime REST API (IBM Quantum emulator)",
        version=version,
        description=description,
        prefix=RUNTIME_PREFIX,
        endpoints=[e for e in ENDPOINTS if _served_in(e, version)],
        error_schema=ERROR_SCHEMA,
        auth_errors=(401, 403),
        extra_headers=[
            {
                "name": "Service-CRN",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The instance acted on (default: the server's first instance)",
            },
            {
                "name": "IBM-API-Version",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "example": version},
                "description": "The API version the response is shaped for (default: current)",
            },
        ],
    )


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def openapi_versioned_json(request: Request) -> Response:
    """`/api/openapi-2026-02-01.json`: IBM's dated copy of the document, one per version."""
    version = request.path_params["version"]
    if version not in {v["version"] for v in API_VERSIONS}:
        known = ", ".join(v["version"] for v in API_VERSIONS)
        return JSONResponse({"detail": f"no API version {version}; known: {known}"}, 404)
    return JSONResponse(openapi_document(version))


middleware = [
    Middleware(ApiVersion),
    Middleware(ErrorBoundary, render=errors.render),
    Middleware(Tenancy, api=Api.RUNTIME, public_paths=PUBLIC_PATHS),
]
