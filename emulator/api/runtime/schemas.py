"""Runtime API wire shapes → domain requests. Every rejection names its field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from emulator.api.query import Param
from emulator.api.query import parse_datetime as query_datetime
from emulator.domain.analytics import DATE_GROUPS, GROUPS
from emulator.domain.errors import InvalidRequest, TooManyTags
from emulator.domain.jobs import JobFilter, JobRequest
from emulator.domain.sessions import SessionMode, SessionRequest
from emulator.domain.workloads import WORKLOAD_MODES, WORKLOAD_STATUSES, Cursor, WorkloadFilter

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


# -- JSON Schemas of the bodies (published in the OpenAPI document; the parsers below enforce
# them, and tests/unit/test_openapi.py checks the captured client bodies against them) --------

_NAME = {"type": "string", "minLength": 1, "maxLength": 256}
JOB_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A job submission (IBM accepts and ignores other keys).",
    "properties": {
        "program_id": {**_NAME, "examples": ["sampler", "estimator", "executor", "noise-learner"]},
        "backend": _NAME,
        "backend_name": {**_NAME, "description": "older name of `backend`"},
        "params": {"description": "the program's input (RuntimeEncoder JSON)"},
        "log_level": {"type": "string", "enum": [*LOG_LEVELS, *(v.lower() for v in LOG_LEVELS)]},
        "session_id": {"type": ["string", "null"], "maxLength": 256},
        "tags": {
            "type": ["array", "null"],
            "maxItems": MAX_TAGS,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH},
        },
        "cost": {"type": ["number", "null"], "minimum": 0},
        "private": {"type": "boolean"},
        "runtime": {"type": ["string", "null"]},
        "calibration_id": {"type": ["string", "null"]},
    },
    "required": ["program_id", "params"],
    "anyOf": [{"required": ["backend"]}, {"required": ["backend_name"]}],
}
SESSION_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mode": {"type": "string", "enum": ["dedicated", "batch"]},
        "backend": _NAME,
        "backend_name": _NAME,
        "instance": {"type": "string"},
        "max_ttl": {"type": ["integer", "null"], "minimum": 1},
    },
    "required": ["mode"],
    "anyOf": [{"required": ["backend"]}, {"required": ["backend_name"]}],
}
SESSION_UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"accepting_jobs": {"type": "boolean"}},
    "required": ["accepting_jobs"],
}
TAGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"tags": {**JOB_REQUEST_SCHEMA["properties"]["tags"], "type": "array"}},
    "required": ["tags"],
}

JOB_LIST_QUERY = (
    Param(
        "limit",
        "integer",
        "jobs per page; out of range means the default, as IBM documents",
        default=DEFAULT_LIMIT,
        minimum=1,
        maximum=DEFAULT_LIMIT,
        invalid="default",
    ),
    Param("offset", "integer", "jobs to skip", default=0, minimum=0),
    Param("pending", "boolean", "true: Queued or Running jobs only; false: ended jobs only"),
    Param("program", "string", "program id", max_length=64),
    Param("backend", "string", "backend name", max_length=128),
    Param("session_id", "string", "session (or batch) id", max_length=128),
    Param("created_after", "date-time", "jobs created at or after this time"),
    Param("created_before", "date-time", "jobs created at or before this time"),
    Param(
        "tags", "string", "jobs carrying every tag given", repeated=True, max_length=MAX_TAG_LENGTH
    ),
    Param(
        "sort",
        "string",
        "by creation time",
        default="DESC",
        choices=("ASC", "DESC"),
        case_insensitive=True,
    ),
    Param("exclude_params", "boolean", "leave out each job's params", default=False),
    Param("include_mocks", "boolean", "also the jobs of mock_* (dry-run) backends", default=False),
)
WORKLOADS_QUERY = (
    Param("user", "string", "whose workloads: only `me`", choices=("me",)),
    Param(
        "sort", "string", "by creation time, `-` for newest first", default="createdAt",
        choices=("createdAt", "-createdAt"),
    ),
    Param("limit", "integer", "workloads per page", default=10, minimum=1, maximum=50),
    Param("next", "string", "cursor of the next page (from `next.href`)", max_length=200),
    Param("previous", "string", "cursor of the previous page", max_length=200),
    Param("backend", "string", "backend name", max_length=128),
    Param("search", "string", "text in the workload's id or tags", max_length=100),
    Param(
        "status", "string", "statuses to keep", repeated=True, aliases=("status[]",),
        choices=WORKLOAD_STATUSES,
    ),
    Param("mode", "string", "job, session or batch", choices=WORKLOAD_MODES),
    Param("created_after", "date-time", "created at or after this time"),
    Param("created_before", "date-time", "created at or before this time"),
    Param(
        "tags", "string", "jobs carrying every tag given", repeated=True, aliases=("tags[]",),
        max_length=MAX_TAG_LENGTH,
    ),
    Param("include_mocks", "boolean", "also mock_* (dry-run) backends", default=False),
)


def workload_filter(q: Mapping[str, Any], mocks: tuple[str, ...] = ()) -> WorkloadFilter:
    """`GET /workloads` query, parsed by WORKLOADS_QUERY; a cursor it cannot read is a 400."""
    cursors: dict[str, Cursor | None] = {}
    for name in ("next", "previous"):
        token = q[name]
        try:
            cursors[name] = Cursor.decode(token) if token else None
        except ValueError:
            raise InvalidRequest(name, "is not a cursor this API gave out") from None
    if cursors["next"] is not None and cursors["previous"] is not None:
        raise InvalidRequest("previous", "cannot be given with next")
    return WorkloadFilter(
        limit=q["limit"],
        descending=q["sort"] == "-createdAt",
        after=cursors["next"],
        before=cursors["previous"],
        backend=q["backend"],
        search=q["search"],
        statuses=tuple(q["status"] or ()),
        mode=q["mode"],
        created_after=q["created_after"],
        created_before=q["created_before"],
        tags=tuple(q["tags"] or ()),
        hidden_backends=() if q["include_mocks"] else tuple(m for m in mocks if m != q["backend"]),
    )


BACKENDS_QUERY = (
    Param("include_mocks", "boolean", "also the mock_* (dry-run) backends", default=False),
)
JOB_QUERY = (Param("exclude_params", "boolean", "leave out the job's params", default=False),)
TAGS_QUERY = (
    Param("type", "string", "what is tagged", default="job", choices=("job",)),
    Param("search", "string", "text the tags contain", required=True, min_length=3, max_length=100),
)
CONFIGURATION_QUERY = (
    Param(
        "calibration_id",
        "string",
        "a calibration id (the emulator serves one per backend)",
        max_length=128,
    ),
)
PROPERTIES_QUERY = (
    Param("updated_before", "date-time", "the calibration in force before this time"),
    *CONFIGURATION_QUERY,
)


def parse_datetime(value: str, field: str) -> datetime:
    return query_datetime(value, field)


def job_filter(
    q: Mapping[str, Any], mocks: tuple[str, ...] = ()
) -> tuple[JobFilter, bool]:
    """`GET /jobs` query, parsed by JOB_LIST_QUERY → (filter, exclude_params). The jobs of the
    `mocks` backends are left out unless `include_mocks` (or the filter names the backend)."""
    flt = JobFilter(
        limit=q["limit"],
        offset=q["offset"],
        pending=q["pending"],
        program_id=q["program"],
        backend=q["backend"],
        session_id=q["session_id"],
        created_after=q["created_after"],
        created_before=q["created_before"],
        tags=q["tags"],
        descending=q["sort"] == "DESC",
        hidden_backends=() if q["include_mocks"] else tuple(m for m in mocks if m != q["backend"]),
    )
    return flt, bool(q["exclude_params"])


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


INSTANCE_LIMIT_MAX = 2_147_483_647
INSTANCE_CONFIGURATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "instance_limit": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": INSTANCE_LIMIT_MAX,
            "description": "usage limit in seconds per usage period; null removes it",
        }
    },
    "required": ["instance_limit"],
}


def parse_instance_configuration(body: Any) -> float | None:
    """`PUT /instances/configuration`: `{"instance_limit": seconds}` or null to remove it."""
    if not isinstance(body, dict) or "instance_limit" not in body:
        raise InvalidRequest("instance_limit", 'is required: {"instance_limit": seconds | null}')
    value = body["instance_limit"]
    if value is None:
        return None
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not whole or not 1 <= value <= INSTANCE_LIMIT_MAX:
        raise InvalidRequest(
            "instance_limit", f"must be an integer from 1 to {INSTANCE_LIMIT_MAX}, or null"
        )
    return float(value)


ACCOUNT_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
ACCOUNT_QUERY = (Param("plan_id", "string", "only this plan's configuration", max_length=64),)


def account_id(value: str) -> str:
    if not ACCOUNT_ID.fullmatch(value):
        raise InvalidRequest("id", "must be 1-64 letters, digits, '-' or '_' (no 'a/' prefix)")
    return value


_FILTERS = (
    Param("instance", "string", "instances (CRNs); the caller's own is the one served",
          repeated=True, aliases=("instance[]",), max_length=512),
    Param("interval_start", "date-time", "jobs ended at or after (default: the period's start)"),
    Param("interval_end", "date-time", "jobs ended before (default: now)"),
    Param("backend", "string", "backends", repeated=True, aliases=("backend[]",), max_length=128),
    Param("user_id", "string", "users (the emulator has none: any value matches nothing)",
          repeated=True, aliases=("user_id[]",), max_length=128),
    Param("simulators", "boolean", "include simulators", default=True),
    Param("plan", "string", "plan names", repeated=True, aliases=("plan[]",), max_length=128),
    Param("subscription_id", "string", "subscriptions", repeated=True,
          aliases=("subscription_id[]",), max_length=36),
)
ANALYTICS_FILTERS_QUERY = (_FILTERS[0],)
ANALYTICS_USAGE_QUERY = _FILTERS
ANALYTICS_GROUPED_QUERY = (
    Param("group_by", "string", "what to group by", choices=GROUPS, required=True),
    *_FILTERS,
)
ANALYTICS_BY_DATE_QUERY = (
    Param("group_by", "string", "what to group by", choices=DATE_GROUPS, required=True),
    *_FILTERS,
)
