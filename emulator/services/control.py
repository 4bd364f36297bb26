"""The control plane's operations: reset, inspection, progression, outcomes, faults, backends.

The admin routes translate HTTP to these calls; the rules themselves live in the store
(`ControlStore`) so they persist and so the submission path consumes them atomically.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator import __version__
from emulator.config import Settings, env_name, setting_fields
from emulator.domain.admission import parse_reservation
from emulator.domain.backends import BackendRegistry
from emulator.domain.controls import BackendState, OutcomeRule, Progression, ProgressionPolicy
from emulator.domain.errors import EmulatorError, InvalidRequest
from emulator.domain.jobs import JobEvent, JobSnapshot, JobState
from emulator.domain.sessions import SessionSnapshot
from emulator.services.hooks import ExecutionHooks
from emulator.services.jobs import JobService
from emulator.services.summaries import params_summary, result_summary
from emulator.services.traffic import FaultInjector, FaultRule, RequestJournal
from emulator.store.controls import ControlStore
from emulator.store.jobs import Repository
from emulator.store.sessions import SessionStore


@dataclass(frozen=True)
class JobDetail:
    """One job as the control plane shows it: snapshot, params/result summaries, log."""

    job: JobSnapshot
    params: dict[str, Any]
    result: dict[str, Any] | None
    log: list[JobEvent]


class ControlService:
    """Everything `/_emulator` can do, over the same store, workers and rules as the APIs."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        controls: ControlStore,
        jobs: JobService,
        sessions: SessionStore,
        backends: BackendRegistry,
        pool: ExecutionHooks | None,
        journal: RequestJournal,
        faults: FaultInjector,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.controls = controls
        self.jobs = jobs
        self.sessions = sessions
        self.backends = backends
        self.pool = pool
        self.journal = journal
        self.faults = faults

    # -- names ------------------------------------------------------------------------------

    def instance_crns(self) -> dict[str, str]:
        return {i.name: i.crn for i in self.settings.instance_list}

    def resolve_instance(self, name_or_crn: str, field: str = "instance") -> str:
        crns = self.instance_crns()
        crn = crns.get(name_or_crn, name_or_crn)
        if crn not in crns.values():
            raise InvalidRequest(field, f"no instance {name_or_crn!r}")
        return crn

    def _backend(self, name: str) -> str:
        return self.backends.get(name).name  # BackendNotFound → 404

    # -- inspection ---------------------------------------------------------------------------

    def public_info(self) -> dict[str, Any]:
        """What any client may read: version and what `python -m emulator env` needs."""
        return {
            "version": __version__,
            "emulator": True,
            "default_instance": self.settings.default_instance.crn,
            "api_keys_required": bool(self.settings.api_keys),
            "s3_credentials_required": bool(self.settings.s3_credentials),
        }

    def job_counts(self) -> dict[str, int]:
        """Jobs of every instance by state."""
        return self.repo.count_by_state()

    def info(self) -> dict[str, Any]:
        """`public_info`, backends with their state and queue, instances, settings, counts."""
        return {
            **self.public_info(),
            "instances": [{"name": i.name, "crn": i.crn} for i in self.settings.instance_list],
            "backends": self.backends_overview(),
            "workers": self.settings.workers,
            "database": "sqlite" if not self.settings.database_url else "external",
            "config": self.config(),
            "counts": {"jobs": self.job_counts()},
            "seed": self.controls.seed(),
            "held_polls": self.jobs.watch.waiting,
        }

    def backends_overview(self) -> list[dict[str, Any]]:
        """Every backend with its snapshot, width, state and queue length."""
        states = self.controls.backend_states()
        queues = self.repo.queue_lengths()
        return [
            {
                "name": b.name,
                "snapshot": b.snapshot.source,
                "calibration_id": b.snapshot.calibration_id,
                "qubits": b.num_qubits,
                "mock": b.mock,
                **states.get(b.name, BackendState()).to_json(),
                "queue_length": queues.get(b.name, 0),
            }
            for b in self.backends.all()
        ]

    def config(self) -> dict[str, Any]:
        """Every setting with its value and environment variable (keys and secrets masked)."""
        out: dict[str, Any] = {}
        for name, _, _, _ in setting_fields():
            value = getattr(self.settings, name)
            if name == "api_keys":
                value = [key.split("=", 1)[0][:2] + "…" for key in value]
            elif name == "admin_token":
                value = "(set)" if value else ""
            elif name == "s3_credentials":
                # ACCESS_KEY:SECRET=instance → the key and its instance; never the secret.
                value = [e.partition(":")[0] + ":…=" + e.rpartition("=")[2] for e in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Path):
                value = str(value)
            out[name] = {"value": value, "env": env_name(name)}
        return out

    def all_jobs(
        self,
        limit: int = 100,
        state: str | None = None,
        instance: str | None = None,
        backend: str | None = None,
    ) -> list[JobSnapshot]:
        try:
            job_state = JobState(state.lower()) if state else None
        except ValueError:
            raise InvalidRequest("state", "must be a job state such as queued") from None
        crn = self.resolve_instance(instance) if instance else None
        return self.repo.all_jobs(limit=limit, state=job_state, instance=crn, backend=backend)

    def job_detail(self, job_id: str) -> JobDetail:
        job = self.repo.find_job(job_id, with_params=True)
        result = self.repo.raw_result(job_id) if job.state is JobState.COMPLETED else None
        _, events = self.repo.get_events(job.owner, job_id)
        return JobDetail(
            job=job,
            params=params_summary(job.program_id, job.params),
            result=result_summary(job.program_id, result),
            log=events,
        )

    def all_sessions(self, limit: int = 100) -> list[SessionSnapshot]:
        return self.sessions.all(limit)

    # -- reset and seed ---------------------------------------------------------------------

    def reset(self, instance: str | None = None) -> dict[str, Any]:
        """Forget jobs and sessions (of one instance); a full reset forgets everything.

        Running simulations of the deleted jobs are stopped, not awaited.
        """
        crn = self.resolve_instance(instance) if instance else None
        running = self.repo.reset(crn)
        if self.pool is not None:
            for job_id in running:
                self.pool.job_cancelled(job_id)
        if crn is None:
            self.controls.clear()
            self.faults.reload()
            self.faults.seed(None)
            self.journal.clear()
            objects = self.settings.data_dir / "objects"
            if objects.is_dir():
                for child in objects.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        return {"reset": "all" if crn is None else crn, "stopped_jobs": running}

    def set_seed(self, raw: Any) -> int | None:
        seed = raw.get("seed") if isinstance(raw, dict) else None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidRequest("seed", "must be an integer (or null to unset)")
        self.controls.set_seed(seed)
        self.faults.seed(seed)
        return seed

    # -- progression ---------------------------------------------------------------------------

    def set_progression(self, raw: Any) -> ProgressionPolicy:
        policy = ProgressionPolicy.parse(raw)
        if policy.backend is not None:
            self._backend(policy.backend)
        self.controls.set_progression(policy)
        if policy.mode is Progression.IMMEDIATE:
            self.release(backend=policy.backend)  # back to immediate: nothing stays held
        return policy

    def progressions(self) -> list[ProgressionPolicy]:
        return self.controls.progressions()

    def release(self, job_id: str | None = None, backend: str | None = None) -> list[str]:
        if job_id is not None:
            self.repo.find_job(job_id)  # JobNotFound: 404
        released = self.repo.release(job_id=job_id, backend=backend)
        if released and self.pool is not None:
            for _ in released:
                self.pool.job_submitted()
        return released

    # -- outcomes --------------------------------------------------------------------------------

    def add_outcome(self, raw: Any) -> OutcomeRule:
        rule = OutcomeRule.parse(raw, self.instance_crns())
        if rule.backend is not None:
            self._backend(rule.backend)
        return self.controls.add_outcome(rule)

    def outcomes(self) -> list[OutcomeRule]:
        return self.controls.outcomes()

    def clear_outcomes(self) -> None:
        self.controls.clear_outcomes()

    def delete_outcome(self, rule_id: int) -> None:
        if not self.controls.delete_outcome(rule_id):
            raise RuleNotFound(f"no outcome rule {rule_id}")

    # -- faults ------------------------------------------------------------------------------------

    def add_fault(self, raw: Any) -> FaultRule:
        return self.faults.add(FaultRule.parse(raw))

    def faults_list(self) -> list[FaultRule]:
        self.faults.reload()
        return self.faults.rules()

    def delete_fault(self, rule_id: int) -> None:
        if not self.controls.delete_fault(rule_id):
            raise RuleNotFound(f"no fault rule {rule_id}")
        self.faults.reload()

    def clear_faults(self) -> None:
        self.controls.clear_faults()
        self.faults.reload()

    # -- backends and reservations -------------------------------------------------------------

    def set_backend_state(self, backend: str, raw: Any) -> BackendState:
        name = self._backend(backend)
        state = BackendState.parse(raw)
        self.controls.set_backend_state(name, state)
        return state

    def add_reservation(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise InvalidRequest("body", "must be a JSON object")
        for name in ("backend", "start", "end"):
            if not isinstance(raw.get(name), str):
                raise InvalidRequest(name, "is required (a string)")
        self._backend(raw["backend"])
        spec = f"backend={raw['backend']};start={raw['start']};end={raw['end']}"
        if raw.get("instance"):
            spec += f";instance={self.resolve_instance(str(raw['instance']))}"
        try:
            reservation = parse_reservation(spec, self.instance_crns())
        except ValueError as exc:
            raise InvalidRequest("start", str(exc)) from None
        rule_id = self.controls.add_reservation(reservation)
        return {"id": rule_id, **_reservation_json(reservation)}

    def reservations(self) -> list[dict[str, Any]]:
        configured = [{"id": None, **_reservation_json(r)} for r in self.settings.reservation_list]
        made = [{"id": i, **_reservation_json(r)} for i, r in self.controls.reservations()]
        return configured + made

    def delete_reservation(self, rule_id: int) -> None:
        if not self.controls.delete_reservation(rule_id):
            raise RuleNotFound(f"no reservation {rule_id}")


class RuleNotFound(EmulatorError):
    """A rule id the control plane does not have (404)."""


def _reservation_json(reservation: Any) -> dict[str, Any]:
    return {
        "backend": reservation.backend,
        "start": reservation.start.isoformat() + "Z",
        "end": reservation.end.isoformat() + "Z",
        "instance": reservation.instance,
    }
