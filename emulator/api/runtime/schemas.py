"""Runtime API wire shapes → domain requests. Every rejection names its field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dateutil import parser as dateparser

from emulator.jobs.errors import InvalidRequest, TooManyTags
from emulator.jobs.model import JobFilter, JobRequest, naive_utc
from emulator.jobs.sessions import SessionMode, SessionRequest

MAX_TAGS = 8
MAX_TAG_LENGTH = 86
MAX_COST = 10800  # IBM caps max_execution_time at 3 hours
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
DEFAULT_LIMIT = 200


def _optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(key, "must be a string")
    return value


def parse_tags(value: Any, field: str = "tags") -> tuple[str, ...]:
    """IBM's tag rules: a list of at most 8 strings of at most 86 characters."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidRequest(field, "must be a list of strings")
    if len(value) > MAX_TAGS:
        raise TooManyTags(field, f"a job can have at most {MAX_TAGS} tags, got {len(value)}")
    for index, tag in enumerate(value):
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise InvalidRequest(
                f"{field}[{index}]", f"tags must be 1 to {MAX_TAG_LENGTH} characters"
            )
    return tuple(dict.fromkeys(value))


def _backend_field(body: Mapping[str, Any]) -> str:
    """`backend` (or IBM's older `backend_name`): required, a non-empty string."""
    backend = body.get("backend")
    if backend is None:
        backend = body.get("backend_name")
    if not isinstance(backend, str) or not backend:
        raise InvalidRequest("backend", "is required and must be a non-empty string")
    return backend


def parse_job_request(body: Any, caller: str | None) -> JobRequest:
    """`POST /jobs` body → JobRequest. Unknown keys are ignored, as IBM's server does."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    program_id = body.get("program_id")
    if not isinstance(program_id, str) or not program_id:
        raise InvalidRequest("program_id", "is required and must be a non-empty string")
    backend = _backend_field(body)
    if "params" not in body:
        raise InvalidRequest("params", "is required")
    log_level = body.get("log_level") or "WARNING"
    if not isinstance(log_level, str) or log_level.upper() not in LOG_LEVELS:
        raise InvalidRequest("log_level", f"must be one of {', '.join(LOG_LEVELS)} (any case)")
    cost = body.get("cost")
    if cost is not None:
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
            raise InvalidRequest("cost", "must be a non-negative number of seconds")
        cost = min(int(cost), MAX_COST)
    private = body.get("private", False)
    if not isinstance(private, bool):
        raise InvalidRequest("private", "must be a boolean")
    return JobRequest(
        program_id=program_id,
        backend=backend,
        params=body["params"],
        log_level=log_level.upper(),
        session_id=_optional_str(body, "session_id"),
        tags=parse_tags(body.get("tags")),
        cost=cost,
        private=private,
        runtime=_optional_str(body, "runtime"),
        calibration_id=_optional_str(body, "calibration_id"),
        caller=caller,
    )


def _bool(value: str, field: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidRequest(field, "must be true or false")


def parse_datetime(value: str, field: str) -> datetime:
    try:
        return naive_utc(dateparser.isoparse(value))
    except (ValueError, OverflowError):
        raise InvalidRequest(field, "must be an ISO 8601 date-time") from None


def _int_or_default(value: str | None, default: int, low: int, high: int | None) -> int:
    # IBM: "If the value is out of range, no error occurs and the default value is used".
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    if number < low or (high is not None and number > high):
        return default
    return number


def parse_job_filter(query: Mapping[str, str], tags: list[str]) -> tuple[JobFilter, bool]:
    """`GET /jobs` query → (filter, exclude_params)."""
    pending = query.get("pending")
    created_after = query.get("created_after")
    created_before = query.get("created_before")
    sort = (query.get("sort") or "DESC").upper()
    if sort not in ("ASC", "DESC"):
        raise InvalidRequest("sort", "must be ASC or DESC")
    flt = JobFilter(
        limit=_int_or_default(query.get("limit"), DEFAULT_LIMIT, 1, DEFAULT_LIMIT),
        offset=_int_or_default(query.get("offset"), 0, 0, None),
        pending=None if pending is None else _bool(pending, "pending"),
        program_id=query.get("program") or None,
        backend=query.get("backend") or None,
        session_id=query.get("session_id") or None,
        created_after=parse_datetime(created_after, "created_after") if created_after else None,
        created_before=parse_datetime(created_before, "created_before") if created_before else None,
        tags=tuple(t for t in tags if t),
        descending=sort == "DESC",
    )
    exclude = query.get("exclude_params")
    return flt, (False if exclude is None else _bool(exclude, "exclude_params"))


def parse_session_request(body: Any) -> SessionRequest:
    """`POST /sessions` body. Unknown keys (`instance`, channel-partner TTLs) are ignored."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    mode = body.get("mode")
    if mode not in [m.value for m in SessionMode]:
        raise InvalidRequest("mode", "is required and must be 'dedicated' or 'batch'")
    backend = _backend_field(body)
    max_ttl = body.get("max_ttl")
    if max_ttl is not None and (
        isinstance(max_ttl, bool) or not isinstance(max_ttl, int) or max_ttl < 1
    ):
        raise InvalidRequest("max_ttl", "must be an integer number of seconds >= 1")
    return SessionRequest(mode=SessionMode(mode), backend=backend, max_ttl=max_ttl)


def parse_session_update(body: Any) -> bool:
    """`PATCH /sessions/{id}` body → the new `accepting_jobs`."""
    if not isinstance(body, dict) or not isinstance(body.get("accepting_jobs"), bool):
        raise InvalidRequest("accepting_jobs", "is required and must be true or false")
    return bool(body["accepting_jobs"])
