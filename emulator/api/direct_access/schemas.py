"""Direct Access wire shapes → domain requests. Schema violations name their field (422)."""

from __future__ import annotations

from typing import Any

from emulator.domain.errors import InvalidRequest
from emulator.domain.jobs import DirectAccessJobRequest

PROGRAMS = ("sampler", "estimator")
LOG_LEVELS = ("info", "debug", "warning", "error", "critical")
STORAGE_TYPES = ("s3_compatible", "ibmcloud_cos")
INT64_MAX = 2**63 - 1  # IBM's schema: timeout_secs is an int64


_STORAGE_ENTRY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["s3_compatible"]},
        "presigned_url": {"type": "string", "format": "uri", "maxLength": 8192},
    },
    "required": ["type", "presigned_url"],
    "additionalProperties": False,
}
JOB_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "backend": {"type": "string", "minLength": 1, "maxLength": 256},
        "program_id": {"type": "string", "enum": list(PROGRAMS)},
        "timeout_secs": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
        "log_level": {"type": "string", "enum": list(LOG_LEVELS)},
        "storage": {
            "type": "object",
            "properties": {"input": _STORAGE_ENTRY, "results": _STORAGE_ENTRY,
                           "logs": _STORAGE_ENTRY},
            "required": ["input", "results"],
        },
    },
    "required": ["id", "backend", "program_id", "timeout_secs", "storage"],
}


def _string(body: dict[str, Any], key: str, *, low: int = 1, high: int = 256) -> str:
    value = body.get(key)
    if value is None:
        raise InvalidRequest(key, "is required")
    if not isinstance(value, str):
        raise InvalidRequest(key, "must be a string")
    if not low <= len(value) <= high:
        raise InvalidRequest(key, f"must be {low} to {high} characters long")
    return value


def _storage_entry(value: Any, field: str, required: bool) -> dict[str, str] | None:
    if value is None:
        if required:
            raise InvalidRequest(field, "is required")
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(field, "must be an object")
    kind = value.get("type")
    if kind not in STORAGE_TYPES:
        raise InvalidRequest(f"{field}.type", f"must be one of {', '.join(STORAGE_TYPES)}")
    if kind == "ibmcloud_cos":
        # IBM-internal storage: the emulator (and qrmi) only know presigned URLs.
        raise InvalidRequest(f"{field}.type", "ibmcloud_cos is not supported; use s3_compatible")
    url = value.get("presigned_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidRequest(f"{field}.presigned_url", "must be an http(s) URL")
    unknown = set(value) - {"type", "presigned_url"}
    if unknown:
        raise InvalidRequest(f"{field}.{sorted(unknown)[0]}", "is not allowed for s3_compatible")
    return {"type": kind, "presigned_url": url}


def parse_job_request(body: Any) -> DirectAccessJobRequest:
    """`POST /v1/jobs` body → request, checking the published schema."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    job_id = _string(body, "id")
    backend = _string(body, "backend")
    program_id = _string(body, "program_id")
    if program_id not in PROGRAMS:
        raise InvalidRequest("program_id", f"must be one of {', '.join(PROGRAMS)}")
    timeout = body.get("timeout_secs")
    if timeout is None:
        raise InvalidRequest("timeout_secs", "is required")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= INT64_MAX:
        raise InvalidRequest("timeout_secs", f"must be an integer from 1 to {INT64_MAX}")
    log_level = body.get("log_level", "warning")
    if not isinstance(log_level, str) or log_level not in LOG_LEVELS:
        raise InvalidRequest("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    storage = body.get("storage")
    if not isinstance(storage, dict):
        raise InvalidRequest("storage", "is required and must be an object")
    entries: dict[str, dict[str, str]] = {}
    for name, required in (("input", True), ("results", True), ("logs", False)):
        entry = _storage_entry(storage.get(name), f"storage.{name}", required)
        if entry is not None:
            entries[name] = entry
    return DirectAccessJobRequest(
        id=job_id,
        program_id=program_id,
        backend=backend,
        storage=entries,
        timeout_secs=timeout,
        log_level=log_level,
    )
