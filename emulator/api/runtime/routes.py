"""Qiskit Runtime REST API routes (relative to `…/api/v1`). Parse, call the service, respond."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from emulator.api.common import ErrorBoundary, Tenancy, read_json
from emulator.api.query import parse_query
from emulator.api.runtime import errors, schemas, views
from emulator.api.runtime.versions import API_VERSIONS, ApiVersion
from emulator.config import Instance
from emulator.jobs.errors import BackendDataNotFound, InvalidRequest
from emulator.jobs.model import Api, JobSnapshot, Owner, utcnow
from emulator.jobs.service import render_logs
from emulator.runtime_state import EmulatorState

PUBLIC_PATHS = ("/versions",)


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _instance(request: Request) -> Instance:
    instance: Instance = request.state.instance
    return instance


def _owner(request: Request) -> Owner:
    owner: Owner = request.state.owner
    return owner


# -- backends --------------------------------------------------------------------------------


async def list_backends(request: Request) -> Response:
    state = _state(request)
    queued = await run_in_threadpool(state.jobs.queue_lengths)
    availability = await run_in_threadpool(state.jobs.backend_states)
    devices = [
        views.device_view(b, queued.get(b.name, 0), availability[b.name])
        for b in state.backends.all()
    ]
    return JSONResponse({"devices": devices})


async def backend_configuration(request: Request) -> Response:
    backend = _state(request).backends.get(request.path_params["name"])
    return JSONResponse(backend.snapshot.configuration)


async def backend_properties(request: Request) -> Response:
    backend = _state(request).backends.get(request.path_params["name"])
    asked = parse_query(request.query_params, schemas.PROPERTIES_QUERY)["updated_before"]
    if asked is not None:
        # The emulator has one calibration per backend: served for any later date.
        calibrated = backend.snapshot.last_update
        if calibrated is not None and asked < calibrated:
            raise BackendDataNotFound(
                f"No properties of {backend.name} before {request.query_params['updated_before']}"
                f": its calibration is from {backend.snapshot.properties['last_update_date']}."
            )
    return JSONResponse(backend.snapshot.properties)


async def backend_status(request: Request) -> Response:
    state = _state(request)
    backend = state.backends.get(request.path_params["name"])
    queued = await run_in_threadpool(state.jobs.queue_length, backend.name)
    availability = await run_in_threadpool(state.jobs.backend_state, backend.name)
    return JSONResponse(views.status_view(backend, queued, availability))


async def backend_defaults(request: Request) -> Response:
    _state(request).backends.get(request.path_params["name"])
    return JSONResponse({})


async def instance_usage(request: Request) -> Response:
    state = _state(request)
    instance = _instance(request)
    report = await run_in_threadpool(state.jobs.usage, _owner(request))
    return JSONResponse(views.usage_view(instance, report))


async def versions(request: Request) -> Response:
    return JSONResponse({"versions": API_VERSIONS})


# -- jobs ------------------------------------------------------------------------------------


async def _read_json(request: Request) -> Any:
    return await read_json(request)


async def create_job(request: Request) -> Response:
    body = await _read_json(request)
    job_request = schemas.parse_job_request(body, request.headers.get("x-qx-client-application"))
    job = await run_in_threadpool(_state(request).jobs.create_job, _owner(request), job_request)
    answer: dict[str, Any] = {"id": job.id, "backend": job.backend}
    if job.session_id:
        answer["session_id"] = job.session_id
    if job.private:
        answer["private"] = True
    return JSONResponse(answer)


async def list_jobs(request: Request) -> Response:
    flt, exclude_params = schemas.parse_job_filter(request.query_params)
    state = _state(request)
    jobs, count = await run_in_threadpool(state.jobs.list_jobs, _owner(request), flt)
    if not exclude_params:
        jobs = [
            await run_in_threadpool(state.jobs.get_job, _owner(request), j.id, True) for j in jobs
        ]
    return JSONResponse(
        {
            "jobs": [views.job_view(j, include_params=not exclude_params) for j in jobs],
            "count": count,
            "limit": flt.limit,
            "offset": flt.offset,
        }
    )


async def get_job(request: Request) -> Response:
    exclude = parse_query(request.query_params, schemas.JOB_QUERY)["exclude_params"]
    state = _state(request)
    job_id = request.path_params["job_id"]

    async def read() -> JobSnapshot:
        return await run_in_threadpool(state.jobs.get_job, _owner(request), job_id, not exclude)

    async def poll() -> JobSnapshot:
        # The client's poll: counts toward releasing a job held by manual progression.
        return await run_in_threadpool(state.jobs.poll_job, _owner(request), job_id, not exclude)

    hold = state.settings.status_hold_ms / 1000
    if hold > 0 and state.pool and state.pool.slots:
        # Most jobs end within milliseconds: answer this poll with the outcome, not "Queued"
        # or "Running" (the client sleeps between polls; the outcome saves it that sleep).
        job = await state.watch.wait_until_final(job_id, read, _answer_now, hold, first=poll)
    else:
        job = await poll()
    return JSONResponse(views.job_view(job, include_params=not exclude))


def _answer_now(job: JobSnapshot) -> bool:
    """A final job, or a held one (waiting cannot end it), is answered without a hold."""
    return job.state.terminal or job.held


async def job_results(request: Request) -> Response:
    job, text = await run_in_threadpool(
        _state(request).jobs.get_result, _owner(request), request.path_params["job_id"]
    )
    if text is None:
        # IBM: 204 "Job's final result not found" while there is nothing yet.
        return Response(status_code=204)
    return Response(
        text, media_type="application/json" if job.state.value == "completed" else "text/plain"
    )


async def cancel_job(request: Request) -> Response:
    await run_in_threadpool(
        _state(request).jobs.cancel_job, _owner(request), request.path_params["job_id"]
    )
    return Response(status_code=204)


async def delete_job(request: Request) -> Response:
    await run_in_threadpool(
        _state(request).jobs.delete_job, _owner(request), request.path_params["job_id"]
    )
    return Response(status_code=204)


async def job_logs(request: Request) -> Response:
    _, events = await run_in_threadpool(
        _state(request).jobs.get_logs, _owner(request), request.path_params["job_id"]
    )
    return PlainTextResponse(render_logs(events))


async def job_metrics(request: Request) -> Response:
    job = await run_in_threadpool(
        _state(request).jobs.get_job, _owner(request), request.path_params["job_id"]
    )
    return JSONResponse(views.metrics_view(job))


async def replace_job_tags(request: Request) -> Response:
    body = await _read_json(request)
    if not isinstance(body, dict) or "tags" not in body:
        raise InvalidRequest("tags", 'is required: {"tags": [...]}')
    tags = schemas.parse_tags(body["tags"])
    await run_in_threadpool(
        _state(request).jobs.replace_tags, _owner(request), request.path_params["job_id"], tags
    )
    return Response(status_code=204)


async def list_tags(request: Request) -> Response:
    search = parse_query(request.query_params, schemas.TAGS_QUERY)["search"]
    tags = await run_in_threadpool(_state(request).jobs.search_tags, _owner(request), search)
    return JSONResponse({"tags": tags})


# -- sessions and batches -----------------------------------------------------------------------


async def create_session(request: Request) -> Response:
    session_request = schemas.parse_session_request(await _read_json(request))
    session = await run_in_threadpool(
        _state(request).sessions.create, _owner(request).instance, session_request
    )
    return JSONResponse(views.session_view(session, utcnow()))


async def get_session(request: Request) -> Response:
    session = await run_in_threadpool(
        _state(request).sessions.get, _owner(request).instance, request.path_params["session_id"]
    )
    return JSONResponse(views.session_view(session, utcnow()))


async def update_session(request: Request) -> Response:
    accepting = schemas.parse_session_update(await _read_json(request))
    await run_in_threadpool(
        _state(request).sessions.set_accepting,
        _owner(request).instance,
        request.path_params["session_id"],
        accepting,
    )
    return Response(status_code=204)


async def cancel_session(request: Request) -> Response:
    await run_in_threadpool(
        _state(request).sessions.cancel,
        _owner(request).instance,
        request.path_params["session_id"],
    )
    return Response(status_code=204)


routes = [
    Route("/backends", list_backends),
    Route("/backends/{name}/configuration", backend_configuration),
    Route("/backends/{name}/properties", backend_properties),
    Route("/backends/{name}/status", backend_status),
    Route("/backends/{name}/defaults", backend_defaults),
    Route("/instances/usage", instance_usage),
    Route("/versions", versions),
    Route("/jobs", create_job, methods=["POST"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/jobs/{job_id}/results", job_results),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{job_id}/logs", job_logs),
    Route("/jobs/{job_id}/metrics", job_metrics),
    Route("/jobs/{job_id}/tags", replace_job_tags, methods=["PUT"]),
    Route("/tags", list_tags),
    Route("/sessions", create_session, methods=["POST"]),
    Route("/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/sessions/{session_id}", update_session, methods=["PATCH"]),
    Route("/sessions/{session_id}/close", cancel_session, methods=["DELETE"]),
]

middleware = [
    Middleware(ApiVersion),
    Middleware(ErrorBoundary, render=errors.render),
    Middleware(Tenancy, api=Api.RUNTIME, public_paths=PUBLIC_PATHS),
]
