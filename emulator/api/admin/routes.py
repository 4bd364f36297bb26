"""The emulator's own control plane under `/_emulator`: JSON in, JSON out.

Routes only translate HTTP to `ControlService` calls; `openapi.py` describes every one of
them (a test checks the two agree); `guard.py` decides who may call them. A GET never
changes state.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from importlib import resources
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from emulator import __version__
from emulator.api.admin import errors
from emulator.api.admin.guard import AdminGuard, SecurityHeaders, is_admin
from emulator.api.admin.openapi import OPENAPI
from emulator.api.boundary import ErrorBoundary, read_json, read_optional_json, store_read
from emulator.api.state import state_of
from emulator.domain.errors import InvalidRequest
from emulator.domain.jobs import JobSnapshot, isoformat
from emulator.domain.sessions import SessionSnapshot
from emulator.services.control import ControlService, JobDetail

BODY_LIMIT = 1 << 20
DASHBOARD = (resources.files("emulator.api.admin") / "dashboard.html").read_text(encoding="utf-8")


def _inline_hash(tag: str, page: str) -> str:
    """CSP source for the page's one inline `<tag>` element, by its SHA-256."""
    (content,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(content.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


# Only the page's own script and style run; it fetches only from this origin, and cannot be
# framed, re-based or made to post a form elsewhere.
DASHBOARD_CSP = (
    f"default-src 'none'; script-src {_inline_hash('script', DASHBOARD)}; "
    f"style-src {_inline_hash('style', DASHBOARD)}; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _control(request: Request) -> ControlService:
    return state_of(request).control


async def _body(request: Request, *, required: bool = True) -> Any:
    """The strict JSON body (1 MiB at most, the server's read deadline); with
    `required=False` an empty body reads as `{}`."""
    if required:
        return await read_json(request, BODY_LIMIT)
    return await read_optional_json(request, BODY_LIMIT)


def _int_param(request: Request, name: str, default: int, maximum: int = 1000) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(name, "must be a whole number") from None
    if not 1 <= value <= maximum:
        raise InvalidRequest(name, f"must be between 1 and {maximum}")
    return value


def _rule_id(request: Request) -> int:
    try:
        return int(request.path_params["rule_id"])
    except ValueError:
        raise InvalidRequest("id", "must be a whole number") from None


# -- views -----------------------------------------------------------------------------------


def job_json(job: JobSnapshot) -> dict[str, Any]:
    duration = None
    if job.running_at is not None and job.finished_at is not None:
        duration = round((job.finished_at - job.running_at).total_seconds(), 3)
    return {
        "id": job.id,
        "instance": job.instance,
        "api": job.api.value,
        "program_id": job.program_id,
        "backend": job.backend,
        "state": job.state.value,
        "held": job.held,
        "session_id": job.session_id,
        "tags": list(job.tags),
        "created_at": isoformat(job.created_at),
        "running_at": isoformat(job.running_at),
        "finished_at": isoformat(job.finished_at),
        "duration_seconds": duration,
        "quantum_seconds": job.quantum_seconds,
        "reason": job.reason,
        "reason_code": job.reason_code,
        "attempts": job.attempts,
        # Which worker slot runs it ("<node's pool id>-w<slot>"), while it is Running.
        "worker_id": job.worker_id,
    }


def detail_json(detail: JobDetail) -> dict[str, Any]:
    return {
        **job_json(detail.job),
        "params_summary": detail.params,
        "result_summary": detail.result,
        "log": [
            {"at": isoformat(e.at), "level": e.level, "message": e.message} for e in detail.log
        ],
    }


def session_json(session: SessionSnapshot) -> dict[str, Any]:
    return {
        "id": session.id,
        "instance": session.instance,
        "backend": session.backend,
        "mode": session.mode.value,
        "state": session.state.value,
        "accepting_jobs": session.accepting_jobs,
        "max_ttl": session.max_ttl,
        "created_at": isoformat(session.created_at),
        "closed_at": isoformat(session.closed_at),
        "reason": session.state_reason,
        "pending_jobs": session.jobs.pending,
        "elapsed_seconds": round(session.jobs.elapsed_seconds, 6),
    }


# -- inspection --------------------------------------------------------------------------------


async def dashboard(request: Request) -> Response:
    """The dashboard: one self-contained page that reads the JSON routes below."""
    return HTMLResponse(DASHBOARD, headers={"Content-Security-Policy": DASHBOARD_CSP})


async def health(request: Request) -> Response:
    """200 once the server accepts jobs (workers may still be warming up: jobs just queue).

    Job counts by state only for the admin (they sum every tenant's jobs)."""
    state = state_of(request)
    answer: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "workers": state.execution.workers,
        "workers_ready": state.execution.ready_workers,
    }
    proxy = getattr(request.app.state, "intercept", None)
    if proxy is not None:  # serve --intercept-port: what it answered, what it refused
        answer["intercept"] = {
            "port": proxy.port,
            "ca": str(proxy.ca.cert_path.resolve()),
            **proxy.stats.to_json(),
        }
    if is_admin(request):
        answer["jobs"] = await store_read(state.control.job_counts)
    return JSONResponse(answer)


async def info(request: Request) -> Response:
    """Version, instances, backends (state, queue), settings, counts; without the admin token
    (when one is set) only what `python -m emulator env` reads."""
    control = _control(request)
    if not is_admin(request):
        return JSONResponse(await run_in_threadpool(control.public_info))
    body = await run_in_threadpool(control.info)
    # The event loop's own tasks: a held poll whose client left must not leave one behind.
    body["tasks"] = len(asyncio.all_tasks())
    return JSONResponse(body)


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


async def list_jobs(request: Request) -> Response:
    params = request.query_params
    jobs = await run_in_threadpool(
        _control(request).all_jobs,
        _int_param(request, "limit", 100),
        params.get("state"),
        params.get("instance"),
        params.get("backend"),
    )
    return JSONResponse({"jobs": [job_json(j) for j in jobs]})


async def get_job(request: Request) -> Response:
    detail = await run_in_threadpool(_control(request).job_detail, request.path_params["job_id"])
    return JSONResponse(detail_json(detail))


async def list_sessions(request: Request) -> Response:
    sessions = await run_in_threadpool(
        _control(request).all_sessions, _int_param(request, "limit", 100)
    )
    return JSONResponse({"sessions": [session_json(s) for s in sessions]})


async def list_requests(request: Request) -> Response:
    limit = _int_param(request, "limit", 100)
    api, method = request.query_params.get("api"), request.query_params.get("method")
    everything = await run_in_threadpool(_control(request).journal.entries)
    entries = [
        e
        for e in everything
        if (api is None or e.api == api) and (method is None or e.method == method.upper())
    ]
    return JSONResponse({"requests": [e.to_json() for e in entries[-limit:]]})


async def clear_requests(request: Request) -> Response:
    await run_in_threadpool(_control(request).journal.clear)
    return Response(status_code=204)


# -- reset and seed ----------------------------------------------------------------------------


async def reset(request: Request) -> Response:
    body = await _body(request, required=False)
    instance = body.get("instance") if isinstance(body, dict) else None
    if instance is not None and not isinstance(instance, str):
        raise InvalidRequest("instance", "must be an instance name or CRN")
    return JSONResponse(await run_in_threadpool(_control(request).reset, instance))


async def seed(request: Request) -> Response:
    value = await run_in_threadpool(_control(request).set_seed, await _body(request))
    return JSONResponse({"seed": value})


# -- progression -------------------------------------------------------------------------------


async def get_progression(request: Request) -> Response:
    policies = await run_in_threadpool(_control(request).progressions)
    return JSONResponse({"progression": [p.to_json() for p in policies]})


async def put_progression(request: Request) -> Response:
    policy = await run_in_threadpool(_control(request).set_progression, await _body(request))
    return JSONResponse(policy.to_json())


async def release_job(request: Request) -> Response:
    released = await run_in_threadpool(
        _control(request).release, request.path_params["job_id"], None
    )
    return JSONResponse({"released": released})


async def release(request: Request) -> Response:
    body = await _body(request, required=False)
    backend = body.get("backend") if isinstance(body, dict) else None
    released = await run_in_threadpool(_control(request).release, None, backend)
    return JSONResponse({"released": released})


# -- outcomes and faults -----------------------------------------------------------------------


async def list_outcomes(request: Request) -> Response:
    rules = await run_in_threadpool(_control(request).outcomes)
    return JSONResponse({"outcomes": [r.to_json() for r in rules]})


async def add_outcome(request: Request) -> Response:
    rule = await run_in_threadpool(_control(request).add_outcome, await _body(request))
    return JSONResponse(rule.to_json(), status_code=201)


async def delete_outcome(request: Request) -> Response:
    await run_in_threadpool(_control(request).delete_outcome, _rule_id(request))
    return Response(status_code=204)


async def clear_outcomes(request: Request) -> Response:
    await run_in_threadpool(_control(request).clear_outcomes)
    return Response(status_code=204)


async def list_faults(request: Request) -> Response:
    rules = await run_in_threadpool(_control(request).faults_list)
    return JSONResponse({"faults": [r.to_json() for r in rules]})


async def add_fault(request: Request) -> Response:
    rule = await run_in_threadpool(_control(request).add_fault, await _body(request))
    return JSONResponse(rule.to_json(), status_code=201)


async def delete_fault(request: Request) -> Response:
    await run_in_threadpool(_control(request).delete_fault, _rule_id(request))
    return Response(status_code=204)


async def clear_faults(request: Request) -> Response:
    await run_in_threadpool(_control(request).clear_faults)
    return Response(status_code=204)


# -- backends and reservations -----------------------------------------------------------------


async def list_backends(request: Request) -> Response:
    return JSONResponse({"backends": await run_in_threadpool(_control(request).backends_overview)})


async def put_backend_state(request: Request) -> Response:
    state = await run_in_threadpool(
        _control(request).set_backend_state, request.path_params["name"], await _body(request)
    )
    return JSONResponse(state.to_json())


async def list_reservations(request: Request) -> Response:
    return JSONResponse({"reservations": await run_in_threadpool(_control(request).reservations)})


async def add_reservation(request: Request) -> Response:
    made = await run_in_threadpool(_control(request).add_reservation, await _body(request))
    return JSONResponse(made, status_code=201)


async def delete_reservation(request: Request) -> Response:
    await run_in_threadpool(_control(request).delete_reservation, _rule_id(request))
    return Response(status_code=204)


routes = [
    Route("/", dashboard),
    Route("/health", health),
    Route("/info", info),
    Route("/openapi.json", openapi),
    Route("/reset", reset, methods=["POST"]),
    Route("/seed", seed, methods=["POST"]),
    Route("/jobs", list_jobs),
    Route("/jobs/{job_id}", get_job),
    Route("/jobs/{job_id}/release", release_job, methods=["POST"]),
    Route("/release", release, methods=["POST"]),
    Route("/sessions", list_sessions),
    Route("/requests", list_requests),
    Route("/requests", clear_requests, methods=["DELETE"]),
    Route("/progression", get_progression),
    Route("/progression", put_progression, methods=["PUT"]),
    Route("/outcomes", list_outcomes),
    Route("/outcomes", add_outcome, methods=["POST"]),
    Route("/outcomes", clear_outcomes, methods=["DELETE"]),
    Route("/outcomes/{rule_id}", delete_outcome, methods=["DELETE"]),
    Route("/faults", list_faults),
    Route("/faults", add_fault, methods=["POST"]),
    Route("/faults", clear_faults, methods=["DELETE"]),
    Route("/faults/{rule_id}", delete_fault, methods=["DELETE"]),
    Route("/backends", list_backends),
    Route("/backends/{name}/state", put_backend_state, methods=["PUT"]),
    Route("/reservations", list_reservations),
    Route("/reservations", add_reservation, methods=["POST"]),
    Route("/reservations/{rule_id}", delete_reservation, methods=["DELETE"]),
]


# Outermost first: headers on every answer, errors as the envelope, then who may ask.
middleware = [
    Middleware(SecurityHeaders),
    Middleware(ErrorBoundary, render=errors.render),
    Middleware(AdminGuard),
]
