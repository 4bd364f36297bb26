"""Domain snapshots → Runtime API JSON, in the shapes the client reads (reference §6)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import qiskit

from emulator.api.jsonio import parse_json
from emulator.api.runtime.versions import (
    EXECUTION_TIME_AT_ROOT,
    LATEST,
    NO_BSS_NOR_USAGE_SECONDS,
    USAGE_VALUE,
    since,
)
from emulator.config import Instance
from emulator.domain.admission import UsageReport
from emulator.domain.backends import ServedBackend
from emulator.domain.controls import BackendState
from emulator.domain.errors import InvalidRequest
from emulator.domain.ids import subscription_id
from emulator.domain.jobs import JobEvent, JobSnapshot, JobState, isoformat
from emulator.domain.outcomes import RAN_TOO_LONG
from emulator.domain.sessions import SessionSnapshot, SessionState
from emulator.domain.workloads import Workload

# The client treats only these five values as meaningful; anything else is polled forever.
STATUS = {
    JobState.QUEUED: "Queued",
    JobState.RUNNING: "Running",
    JobState.COMPLETED: "Completed",
    JobState.FAILED: "Failed",
    JobState.CANCELLED: "Cancelled",
}
log = logging.getLogger("emulator.api.runtime")
USER_ID = "emulator-user"


def _usage(job: JobSnapshot, version: str = LATEST) -> dict[str, Any]:
    seconds = round(job.quantum_seconds or 0.0, 6)
    usage: dict[str, Any] = {
        "qpu_charge_time_seconds": seconds,
        "status": "complete" if job.state.terminal else "pending",
    }
    if since(version, USAGE_VALUE):
        usage["value"] = seconds
    return usage


def job_view(
    job: JobSnapshot, include_params: bool = False, version: str = LATEST
) -> dict[str, Any]:
    """`GET /jobs/{id}` body (IBM JobResponseV3) in the shape of API `version`."""
    status = STATUS[job.state]
    state: dict[str, Any] = {"status": status}
    if job.reason:
        state["reason"] = job.reason
        if job.reason_code is not None:
            state["reason_code"] = int(job.reason_code)
        if job.reason_solution:
            state["reason_solution"] = job.reason_solution
    top_status = status
    if job.state is JobState.CANCELLED and job.reason_code == RAN_TOO_LONG:
        top_status = "Cancelled - Ran too long"
    body: dict[str, Any] = {
        "id": job.id,
        "backend": job.backend,
        "state": state,
        "status": top_status,
        "program": {"id": job.program_id},
        "created": isoformat(job.created_at),
        "runtime": job.runtime or "",
        "session_id": job.session_id,
        "tags": list(job.tags),
        "user_id": USER_ID,
        "cost": job.cost if job.cost is not None else 0,
        # A job's own view keeps `usage.seconds` and `quantum_seconds` in every version (IBM
        # removed them from lists and metrics only): qrmi 0.23's generated client requires
        # `seconds` on a job status.
        "usage": {**_usage(job, version), **_billing(job.quantum_seconds or 0.0)["usage"]},
    }
    if job.finished_at is not None:
        body["ended"] = isoformat(job.finished_at)
    if job.running_at is not None and job.state.terminal:
        body["estimated_running_time_seconds"] = round(job.quantum_seconds or 0.0, 6)
    if job.private:
        body["private"] = True  # IBM returns the key only when true
    if job.calibration_id:
        body["calibration_id"] = job.calibration_id
    if include_params and job.params is not None and not job.private:
        params = stored_params(job)
        if params is not None:
            body["params"] = params
    return body


def stored_params(job: JobSnapshot) -> Any:
    """A job's stored params as JSON, or None if they cannot be served.

    Params are checked strictly on the way in, but rows written by older versions (or by hand)
    may hold what JSON cannot carry (NaN): such a job still reads, without its params.
    """
    try:
        return parse_json(job.params or "", field="params")
    except InvalidRequest as exc:
        log.warning("job %s: stored params not served (%s)", job.id, exc)
        return None


def metrics_view(job: JobSnapshot, version: str = LATEST) -> dict[str, Any]:
    """`GET /jobs/{id}/metrics` (IBM JobMetricsResponse) from the real timestamps, in the
    shape of API `version`."""
    seconds = job.quantum_seconds or 0.0
    body: dict[str, Any] = {
        "timestamps": {
            "created": isoformat(job.created_at),
            "running": isoformat(job.running_at),
            "finished": isoformat(job.finished_at),
        },
        "usage": _usage(job, version),
        "qiskit_version": qiskit.__version__,
        "caller": job.caller or "",
    }
    if not since(version, NO_BSS_NOR_USAGE_SECONDS):
        body.update(_billing(seconds))
        body["usage"] = {**_usage(job, version), **body["usage"]}
    execution_ns = int(seconds * 1e9)
    if since(version, EXECUTION_TIME_AT_ROOT):
        body["circuits_execution_time_ns"] = execution_ns
    else:
        body["usage"]["circuits_execution_time_ns"] = execution_ns
    return body


def _billing(seconds: float) -> dict[str, Any]:
    """The fields API versions before 2026-03-15 carried on jobs and metrics."""
    return {
        "bss": {"seconds": round(seconds, 6)},
        "usage": {"quantum_seconds": round(seconds, 6), "seconds": round(seconds, 6)},
    }


def listed_job_view(job: JobSnapshot, include_params: bool, version: str) -> dict[str, Any]:
    """One job of `GET /jobs` in the shape of API `version`."""
    body = job_view(job, include_params, version)
    if not since(version, NO_BSS_NOR_USAGE_SECONDS):
        body["bss"] = _billing(job.quantum_seconds or 0.0)["bss"]
    else:
        body["usage"] = _usage(job, version)
    return body


def device_view(backend: ServedBackend, queue_length: int, state: BackendState) -> dict[str, Any]:
    """One entry of `GET /backends` `devices`."""
    conf = backend.snapshot.configuration
    view: dict[str, Any] = {
        "name": backend.name,
        "status": {"name": state.status.value, "reason": state.message or "available"},
        "is_simulator": False,
        "qubits": backend.num_qubits,
        "physical_qubits": backend.num_qubits,
        "queue_length": queue_length,
        "clops": {"type": "hardware", "value": 30000},
        "performance_metrics": {},
    }
    if conf.get("processor_type"):
        view["processor_type"] = conf["processor_type"]
    if backend.mock:
        view["class"] = "mock"
    return view


def status_view(backend: ServedBackend, queue_length: int, state: BackendState) -> dict[str, Any]:
    """`GET /backends/{name}/status`: `state` false and the status name unless online."""
    online = state.accepts_jobs
    return {
        "state": online,
        "status": "active" if online else state.status.value,
        "message": state.message or ("available" if online else state.status.value),
        "length_queue": queue_length,
        "backend_version": backend.snapshot.backend_version,
    }


def workload_view(workload: Workload, instance: str, version: str = LATEST) -> dict[str, Any]:
    """One entry of `GET /workloads` (IBM WorkloadResponse)."""
    body: dict[str, Any] = {
        "id": workload.id,
        "created": isoformat(workload.created),
        "backend": workload.backend,
        "instance": instance,
        "user_id": USER_ID,
        "accepting_jobs": workload.accepting_jobs,
        "mode": workload.mode,
        "status": workload.status,
        "tags": list(workload.tags),
    }
    if workload.ended is not None:
        body["ended"] = isoformat(workload.ended)
    if workload.mode == "job" and workload.status_reason:
        body["status_reason"] = workload.status_reason
    if workload.seconds is not None:
        seconds = round(workload.seconds, 6)
        body["usage_seconds"] = seconds  # deprecated by IBM, still in the schema
        body["usage"] = {"qpu_charge_time_seconds": seconds}
        if since(version, USAGE_VALUE):
            body["usage"]["value"] = seconds
        if workload.mode == "job":
            body["usage"]["status"] = "complete" if workload.ended is not None else "pending"
            body["estimated_running_time_seconds"] = seconds
    return body


def instance_view(instance: Instance) -> dict[str, Any]:
    """`GET /instance` (singular): what clients up to 0.31 read when a service is created
    (`qctrl_enabled`), with the instance's identity beside it."""
    return {
        "crn": instance.crn,
        "name": instance.name,
        "plan": instance.plan,
        "plan_id": instance.plan_id,
        "region": instance.region,
        "qctrl_enabled": False,
    }


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def analytics_filters_view(instance: Instance, backends: list[str]) -> dict[str, Any]:
    """`GET /analytics/filters`: the caller's instance, plan and subscription; no users."""
    return {
        "backends": [{"name": name} for name in backends],
        "instances": [{"id": instance.crn, "deleted": False}],
        "users": [],
        "plans": [{"name": instance.plan}],
        "subscriptions": [{"id": subscription_id(instance.plan), "name": instance.plan}],
    }


def usage_by_date_view(
    start: datetime, end: datetime, data: list[dict[str, Any]]
) -> dict[str, Any]:
    for entry in data:
        entry["interval_start"] = isoformat(entry["interval_start"])
        entry["interval_end"] = isoformat(entry["interval_end"])
    return {"interval_start": isoformat(start), "interval_end": isoformat(end), "data": data}


def configuration_view(limit: float | None) -> dict[str, Any]:
    """`GET /instances/configuration`: the usage limit in force (omitted when there is none)."""
    return {} if limit is None else {"instance_limit": _seconds(limit)}


def account_id(crn: str) -> str:
    """The account of a CRN (`…:a/ACCOUNT:…`), without the `a/` prefix."""
    parts = crn.split(":")
    scope = parts[6] if len(parts) > 6 else ""
    return scope.removeprefix("a/")


def account_view(
    instances: list[Instance],
    limits: dict[str, float | None],
    backends: list[str],
    max_ttl: int,
    interactive_ttl: int,
    plan_id: str | None,
) -> dict[str, Any]:
    """`GET /accounts/{id}`: a plan configuration per plan of the account's instances."""
    plans: dict[str, dict[str, Any]] = {}
    for instance in instances:
        pid = instance.plan_id
        if plan_id is not None and pid != plan_id:
            continue
        plan = plans.setdefault(
            pid,
            {
                "plan_id": pid,
                "subscription_id": subscription_id(instance.plan),
                "subscription_name": instance.plan,
                "backends": backends,
                "max_ttl": max_ttl,
                "active_ttl": max_ttl,
                "interactive_ttl": interactive_ttl,
                "functions": [],
            },
        )
        limit = limits.get(instance.crn)
        if limit is not None:
            total = plan.get("usage_limit_seconds", 0) + int(limit)
            plan["usage_limit_seconds"] = plan["usage_allocation_seconds"] = total
            plan["unallocated_usage_seconds"] = 0
    return {"plans": list(plans.values())}


def usage_view(instance: Instance, report: UsageReport) -> dict[str, Any]:
    """`GET /instances/usage`; the limit fields only when the instance has a limit (as IBM)."""
    body: dict[str, Any] = {
        "instance_id": instance.crn,
        "plan_id": instance.plan_id,
        "usage_consumed_seconds": round(report.consumed, 6),
        "usage_period": {
            "start_time": isoformat(report.period_start),
            "end_time": isoformat(report.period_end),
        },
    }
    if report.limit is not None:
        limit = int(report.limit) if report.limit.is_integer() else report.limit
        body["usage_limit_seconds"] = limit
        body["usage_allocation_seconds"] = limit
        body["usage_limit_reached"] = report.reached
    return body


def session_view(session: SessionSnapshot, now: datetime) -> dict[str, Any]:
    """`GET /sessions/{id}`: every field `details()`, `status()`, `usage()`, `from_id` read."""
    jobs = session.jobs
    timestamps = [{"status": "open", "timestamp": isoformat(session.created_at)}]
    if jobs.first_started is not None:
        timestamps.append({"status": "active", "timestamp": isoformat(jobs.first_started)})
    if session.state is SessionState.INACTIVE and jobs.last_finished is not None:
        inactive_at = jobs.last_finished + timedelta(seconds=session.interactive_ttl)
        timestamps.append({"status": "inactive", "timestamp": isoformat(min(inactive_at, now))})
    if session.closed_at is not None:
        timestamps.append({"status": "closed", "timestamp": isoformat(session.closed_at)})
    active_ttl = None
    if jobs.first_started is not None:
        used = (now if session.closed_at is None else session.closed_at) - jobs.first_started
        active_ttl = max(0, session.max_ttl - int(used.total_seconds()))
    return {
        "id": session.id,
        "backend_name": session.backend,
        "mode": session.mode.value,
        "state": session.state.value,
        "state_reason": session.state_reason,
        "accepting_jobs": session.accepting_jobs,
        "max_ttl": session.max_ttl,
        "interactive_ttl": session.interactive_ttl,
        "active_ttl": active_ttl if active_ttl is not None else session.max_ttl,
        "started_at": isoformat(session.created_at),
        "activated_at": isoformat(jobs.first_started),
        "closed_at": isoformat(session.closed_at),
        "last_job_started": isoformat(jobs.last_started),
        "last_job_completed": isoformat(jobs.last_finished),
        "elapsed_time": round(jobs.elapsed_seconds, 6),
        "timestamps": timestamps,
        "user_id": USER_ID,
    }


def logs_view(events: list[JobEvent]) -> str:
    """`GET /jobs/{id}/logs`: plain text, one timestamped line per event."""
    return "".join(f"{isoformat(e.at)} {e.level}: {e.message}\n" for e in events)
