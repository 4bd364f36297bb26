"""The control plane's vocabulary: progression policies, outcome rules, backend states.

Each rule is parsed from the JSON a test posts to `/_emulator/…`; a bad value raises
`InvalidRequest` naming the field, and the admin API answers 400 with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from emulator.domain.errors import InvalidRequest
from emulator.domain.jobs import Api, JobState, NewJob


class Progression(StrEnum):
    """How jobs move from Queued to a final state."""

    IMMEDIATE = "immediate"  # as fast as the workers go
    MANUAL = "manual"  # Queued until released (through the API or after N status polls)
    TIMED = "timed"  # a fixed time Queued, then at least a fixed time Running


class BackendStatus(StrEnum):
    """IBM's backend states: only `online` accepts jobs."""

    ONLINE = "online"
    PAUSED = "paused"
    OFFLINE = "offline"


OUTCOME_STATES = {
    JobState.COMPLETED.value: JobState.COMPLETED,
    JobState.FAILED.value: JobState.FAILED,
    JobState.CANCELLED.value: JobState.CANCELLED,
}


def _object(body: Any, field: str = "body") -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequest(field, "must be a JSON object")
    return body


def _enum(body: Mapping[str, Any], field: str, kind: type[StrEnum], default: Any = None) -> Any:
    value = body.get(field, default)
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)  # type: ignore[attr-defined]
        raise InvalidRequest(field, f"must be one of {allowed}") from None


def _number(
    body: Mapping[str, Any], field: str, default: float = 0.0, *, maximum: float = 86400.0
) -> float:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequest(field, "must be a number")
    if not 0 <= value <= maximum:
        raise InvalidRequest(field, f"must be between 0 and {maximum:g}")
    return float(value)


def _count(body: Mapping[str, Any], field: str, default: int | None) -> int | None:
    value = body.get(field, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(field, "must be a whole number >= 1")
    return value


def _text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(field, "must be a string")
    return value


@dataclass(frozen=True)
class ProgressionPolicy:
    """The progression of one backend's jobs (or of every backend's, when `backend` is None)."""

    mode: Progression = Progression.IMMEDIATE
    backend: str | None = None
    release_after_polls: int | None = None
    queue_seconds: float = 0.0
    run_seconds: float = 0.0

    @classmethod
    def parse(cls, raw: Any) -> ProgressionPolicy:
        body = _object(raw)
        mode = _enum(body, "mode", Progression)
        policy = cls(
            mode=mode,
            backend=_text(body, "backend"),
            release_after_polls=_count(body, "release_after_polls", None),
            queue_seconds=_number(body, "queue_seconds"),
            run_seconds=_number(body, "run_seconds"),
        )
        if policy.release_after_polls is not None and mode is not Progression.MANUAL:
            raise InvalidRequest("release_after_polls", "applies to mode 'manual' only")
        if (policy.queue_seconds or policy.run_seconds) and mode is not Progression.TIMED:
            raise InvalidRequest("queue_seconds", "applies to mode 'timed' only")
        return policy

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ProgressionPolicy:
        """A policy as stored (already validated when it was set)."""
        return cls(**{**body, "mode": Progression(body["mode"])})


@dataclass(frozen=True)
class OutcomeRule:
    """The next `remaining` jobs that match end this way instead of (or after) simulating."""

    state: JobState
    reason: str | None = None
    reason_code: int | None = None
    delay_seconds: float = 0.0
    backend: str | None = None
    program_id: str | None = None
    instance: str | None = None  # CRN
    api: Api | None = None
    remaining: int = 1
    id: int | None = None

    @classmethod
    def parse(cls, raw: Any, instance_crns: Mapping[str, str]) -> OutcomeRule:
        """`instance_crns` maps instance names to CRNs, so tests may name instances."""
        body = _object(raw)
        state_name = body.get("state", "failed")
        if state_name not in OUTCOME_STATES:
            raise InvalidRequest("state", "must be one of completed, failed, cancelled")
        code = body.get("reason_code")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise InvalidRequest("reason_code", "must be an integer")
        instance = _text(body, "instance")
        if instance is not None:
            instance = instance_crns.get(instance, instance)
            if instance not in instance_crns.values():
                raise InvalidRequest("instance", f"no instance {body['instance']!r}")
        api = body.get("api")
        if api is not None and api not in {a.value for a in Api}:
            raise InvalidRequest("api", "must be runtime or direct_access")
        return cls(
            state=OUTCOME_STATES[state_name],
            reason=_text(body, "reason"),
            reason_code=code,
            delay_seconds=_number(body, "delay_seconds"),
            backend=_text(body, "backend"),
            program_id=_text(body, "program_id"),
            instance=instance,
            api=Api(api) if api else None,
            remaining=_count(body, "times", 1) or 1,
        )

    def matches(self, job: NewJob) -> bool:
        return (
            (self.backend is None or self.backend == job.backend)
            and (self.program_id is None or self.program_id == job.program_id)
            and (self.instance is None or self.instance == job.instance)
            and (self.api is None or self.api is job.api)
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        out["api"] = self.api.value if self.api else None
        return out

    @classmethod
    def from_json(cls, body: Mapping[str, Any], rule_id: int, remaining: int) -> OutcomeRule:
        values = {k: v for k, v in body.items() if k not in {"id", "remaining"}}
        values["state"] = JobState(values["state"])
        values["api"] = Api(values["api"]) if values.get("api") else None
        return cls(**values, id=rule_id, remaining=remaining)


@dataclass(frozen=True)
class InjectedOutcome:
    """What a job carries from the outcome rule it matched (stored on the job)."""

    state: JobState
    reason: str | None
    reason_code: int | None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "reason": self.reason, "reason_code": self.reason_code}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> InjectedOutcome:
        return cls(JobState(body["state"]), body.get("reason"), body.get("reason_code"))


@dataclass(frozen=True)
class BackendState:
    """A backend's availability as set through the control plane."""

    status: BackendStatus = BackendStatus.ONLINE
    message: str = ""

    @classmethod
    def parse(cls, raw: Any) -> BackendState:
        body = _object(raw)
        status = _enum(body, "state", BackendStatus)
        return cls(status=status, message=_text(body, "message") or "")

    @property
    def accepts_jobs(self) -> bool:
        return self.status is BackendStatus.ONLINE

    def to_json(self) -> dict[str, Any]:
        return {"state": self.status.value, "message": self.message}
