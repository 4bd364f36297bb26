"""Domain snapshots → Direct Access JSON (reference §3)."""

from __future__ import annotations

import json
from typing import Any

from emulator.domain.backends import ServedBackend
from emulator.domain.controls import BackendState
from emulator.domain.jobs import JobSnapshot, JobState, isoformat

# Direct Access has no queued state: a job is Running from the moment it is accepted.
STATUS = {
    JobState.QUEUED: "Running",
    JobState.RUNNING: "Running",
    JobState.COMPLETED: "Completed",
    JobState.FAILED: "Failed",
    JobState.CANCELLED: "Cancelled",
}
API_VERSION = "2025-08-15"
API_VERSIONS = ["2025-08-01", "2025-08-15"]


def job_view(job: JobSnapshot) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id,
        "backend": job.backend,
        "program_id": job.program_id,
        "log_level": job.log_level.lower(),
        "timeout_secs": job.time_limit,
        "storage": json.loads(job.storage) if job.storage else {},
        "status": STATUS[job.state],
        "created_time": isoformat(job.created_at),
    }
    if job.finished_at is not None:
        body["end_time"] = isoformat(job.finished_at)
    if job.state is JobState.COMPLETED:
        body["usage"] = {"quantum_nanoseconds": int((job.quantum_seconds or 0.0) * 1e9)}
    if job.reason:
        body["reason_message"] = job.reason
        if job.reason_code is not None:
            body["reason_code"] = int(job.reason_code)
        if job.reason_solution:
            body["reason_solution"] = job.reason_solution
    return body


def backend_view(backend: ServedBackend, locked: bool, state: BackendState) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": backend.name,
        "status": state.status.value,
        "message": state.message or "available",
        "version": backend.snapshot.backend_version,
    }
    if state.accepts_jobs:  # IBM: `locked` is only present for online backends
        view["locked"] = locked
    return view
