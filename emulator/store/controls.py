"""Control-plane rows: progression, outcome rules, faults, backend states, reservations, seed.

Kept in the store so they persist across restarts (until removed or reset) and so the
submission transaction can consume an outcome rule atomically with the job's insert.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from emulator.domain.admission import Reservation
from emulator.domain.controls import (
    BackendState,
    InjectedOutcome,
    OutcomeRule,
    Progression,
    ProgressionPolicy,
)
from emulator.domain.jobs import Api, NewJob, utcnow
from emulator.store.db import reading
from emulator.store.jobs import QUEUED_ON
from emulator.store.tables import controls

PROGRESSION = "progression"
OUTCOME = "outcome"
FAULT = "fault"
BACKEND_STATE = "backend_state"
# Read several times a second (backend status polls, every node's fault reload): built once.
_BACKEND_STATE_OF = select(controls.c.body).where(
    controls.c.kind == BACKEND_STATE, controls.c.scope == bindparam("backend")
)
_QUEUE_AND_STATE = select(QUEUED_ON.scalar_subquery(), _BACKEND_STATE_OF.scalar_subquery())
_ROWS_OF_KIND = (
    select(controls.c.id, controls.c.scope, controls.c.body, controls.c.remaining)
    .where(controls.c.kind == bindparam("kind"))
    .order_by(controls.c.id)
)
RESERVATION = "reservation"
SEED = "seed"
ALL_SCOPES = "*"

_ID_FIRST = string.ascii_lowercase[:22]
_ID_ALPHABET = _ID_FIRST + string.digits


def seeded_id(seed: int, n: int, length: int = 20) -> str:
    """The n-th job id after `POST /_emulator/seed`: IBM's shape, the same for the same seed."""
    digest = hashlib.sha256(f"job:{seed}:{n}".encode()).digest()
    first = _ID_FIRST[digest[0] % len(_ID_FIRST)]
    rest = "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[1:length])
    return first + rest


def seeded_sampling_seed(seed: int, n: int) -> int:
    """The n-th job's default `seed_simulator` after a seed was set."""
    digest = hashlib.sha256(f"sampling:{seed}:{n}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class ControlStore:
    """Every control-plane rule, over the job store's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- generic rows ----------------------------------------------------------------------

    def _add(
        self, kind: str, body: dict[str, Any], scope: str = "", remaining: int | None = None
    ) -> int:
        with self.engine.begin() as conn:
            row = conn.execute(
                insert(controls)
                .values(
                    kind=kind,
                    scope=scope,
                    body=json.dumps(body),
                    remaining=remaining,
                    created_at=utcnow(),
                )
                .returning(controls.c.id)
            ).one()
        return int(row[0])

    def _put(self, kind: str, scope: str, body: dict[str, Any]) -> None:
        """One row per (kind, scope): replace it."""
        with self.engine.begin() as conn:
            conn.execute(delete(controls).where(controls.c.kind == kind, controls.c.scope == scope))
            conn.execute(
                insert(controls).values(
                    kind=kind, scope=scope, body=json.dumps(body), created_at=utcnow()
                )
            )

    def _rows(self, kind: str) -> list[tuple[int, str, dict[str, Any], int | None]]:
        with reading(self.engine, single=True) as conn:
            rows = conn.execute(_ROWS_OF_KIND, {"kind": kind}).all()
        return [(int(r[0]), str(r[1]), json.loads(r[2]), r[3]) for r in rows]

    def _delete(self, kind: str, *, rule_id: int | None = None, scope: str | None = None) -> bool:
        conditions = [controls.c.kind == kind]
        if rule_id is not None:
            conditions.append(controls.c.id == rule_id)
        if scope is not None:
            conditions.append(controls.c.scope == scope)
        with self.engine.begin() as conn:
            return conn.execute(delete(controls).where(*conditions)).rowcount > 0

    def clear(self) -> None:
        """Forget every rule (a full reset)."""
        with self.engine.begin() as conn:
            conn.execute(delete(controls))

    # -- progression -----------------------------------------------------------------------

    def set_progression(self, policy: ProgressionPolicy) -> None:
        scope = policy.backend or ALL_SCOPES
        if policy.mode is Progression.IMMEDIATE:
            self._delete(PROGRESSION, scope=scope)  # immediate is the absence of a rule
        else:
            self._put(PROGRESSION, scope, policy.to_json())

    def progressions(self) -> list[ProgressionPolicy]:
        return [ProgressionPolicy.from_json(body) for _, _, body, _ in self._rows(PROGRESSION)]

    @staticmethod
    def _progression_for(conn: Connection, backend: str) -> ProgressionPolicy | None:
        rows = conn.execute(
            select(controls.c.scope, controls.c.body).where(
                controls.c.kind == PROGRESSION, controls.c.scope.in_([backend, ALL_SCOPES])
            )
        ).all()
        by_scope = {scope: json.loads(body) for scope, body in rows}
        body = by_scope.get(backend, by_scope.get(ALL_SCOPES))
        if body is None:
            return None
        return ProgressionPolicy.from_json(body)

    # -- outcome rules ---------------------------------------------------------------------

    def add_outcome(self, rule: OutcomeRule) -> OutcomeRule:
        body = rule.to_json()
        rule_id = self._add(OUTCOME, body, remaining=rule.remaining)
        return replace(rule, id=rule_id)

    def outcomes(self) -> list[OutcomeRule]:
        return [
            OutcomeRule.from_json(body, rule_id, remaining or 0)
            for rule_id, _, body, remaining in self._rows(OUTCOME)
        ]

    def delete_outcome(self, rule_id: int) -> bool:
        return self._delete(OUTCOME, rule_id=rule_id)

    def clear_outcomes(self) -> None:
        self._delete(OUTCOME)

    @staticmethod
    def _take_outcome(conn: Connection, job: NewJob) -> OutcomeRule | None:
        rows = conn.execute(
            select(controls.c.id, controls.c.body, controls.c.remaining)
            .where(controls.c.kind == OUTCOME, controls.c.remaining > 0)
            .order_by(controls.c.id)
        ).all()
        for rule_id, body, remaining in rows:
            rule = OutcomeRule.from_json(json.loads(body), rule_id, remaining)
            if not rule.matches(job):
                continue
            _use_one(conn, rule_id, remaining)
            return rule
        return None

    # -- fault rules (the HTTP layer owns their meaning) -----------------------------------

    def add_fault(self, body: dict[str, Any], remaining: int | None) -> int:
        return self._add(FAULT, body, remaining=remaining)

    def faults(self) -> list[tuple[int, dict[str, Any], int | None]]:
        return [(rule_id, body, remaining) for rule_id, _, body, remaining in self._rows(FAULT)]

    def delete_fault(self, rule_id: int) -> bool:
        return self._delete(FAULT, rule_id=rule_id)

    def clear_faults(self) -> None:
        self._delete(FAULT)

    def use_fault(self, rule_id: int) -> bool:
        """Count one use of a rule; False when it was used up (or removed) meanwhile."""
        with self.engine.begin() as conn:
            row = conn.execute(select(controls.c.remaining).where(controls.c.id == rule_id)).first()
            if row is None:
                return False
            remaining = row[0]
            if remaining is None:  # no `times`: unlimited
                return True
            _use_one(conn, rule_id, remaining)
            return remaining >= 1

    # -- backend states --------------------------------------------------------------------

    def set_backend_state(self, backend: str, state: BackendState) -> None:
        if state.accepts_jobs and not state.message:
            self._delete(BACKEND_STATE, scope=backend)  # online is the absence of a rule
        else:
            self._put(BACKEND_STATE, backend, state.to_json())

    def backend_state(self, backend: str) -> BackendState:
        """One backend's state (online when no rule says otherwise)."""
        with reading(self.engine, single=True) as conn:
            body = conn.execute(_BACKEND_STATE_OF, {"backend": backend}).scalar()
        return BackendState.parse(json.loads(body)) if body else BackendState()

    def backend_status(self, backend: str) -> tuple[int, BackendState]:
        """The backend's queue length (its Queued jobs) and state, in one statement: a
        backend status poll is one read."""
        with reading(self.engine, single=True) as conn:
            queued, body = conn.execute(_QUEUE_AND_STATE, {"backend": backend}).one()
        return int(queued), BackendState.parse(json.loads(body)) if body else BackendState()

    def backend_states(self) -> dict[str, BackendState]:
        return {scope: BackendState.parse(body) for _, scope, body, _ in self._rows(BACKEND_STATE)}

    # -- reservations ----------------------------------------------------------------------

    def add_reservation(self, reservation: Reservation) -> int:
        body = {
            "backend": reservation.backend,
            "start": reservation.start.isoformat(),
            "end": reservation.end.isoformat(),
            "instance": reservation.instance,
        }
        return self._add(RESERVATION, body, scope=reservation.backend)

    def reservations(self) -> list[tuple[int, Reservation]]:
        return [
            (
                rule_id,
                Reservation(
                    backend=body["backend"],
                    start=datetime.fromisoformat(body["start"]),
                    end=datetime.fromisoformat(body["end"]),
                    instance=body.get("instance"),
                ),
            )
            for rule_id, _, body, _ in self._rows(RESERVATION)
        ]

    def delete_reservation(self, rule_id: int) -> bool:
        return self._delete(RESERVATION, rule_id=rule_id)

    # -- seed ------------------------------------------------------------------------------

    def set_seed(self, seed: int | None) -> None:
        if seed is None:
            self._delete(SEED)
        else:
            self._put(SEED, ALL_SCOPES, {"seed": seed, "next": 0})

    def seed(self) -> int | None:
        rows = self._rows(SEED)
        return int(rows[0][2]["seed"]) if rows else None

    @staticmethod
    def _next_seeded(conn: Connection) -> tuple[int, int] | None:
        row = conn.execute(
            select(controls.c.id, controls.c.body).where(controls.c.kind == SEED)
        ).first()
        if row is None:
            return None
        body = json.loads(row[1])
        n = int(body["next"])
        conn.execute(
            update(controls)
            .where(controls.c.id == row[0])
            .values(body=json.dumps({**body, "next": n + 1}))
        )
        return int(body["seed"]), n

    # -- what a new job gets, inside its insert transaction ---------------------------------

    def job_controls(self, conn: Connection, job: NewJob) -> tuple[NewJob, dict[str, Any]]:
        """The job as stored (a seeded id) and its control columns."""
        values: dict[str, Any] = {}
        # One cheap query decides whether any rule applies: most servers have none.
        kinds = set(
            conn.execute(
                select(controls.c.kind)
                .where(controls.c.kind.in_([SEED, PROGRESSION, OUTCOME]))
                .distinct()
            ).scalars()
        )
        if not kinds:
            return job, values
        seeded = self._next_seeded(conn) if SEED in kinds else None
        if seeded is not None:
            seed, n = seeded
            values["seed"] = seeded_sampling_seed(seed, n)
            if job.api is Api.RUNTIME:  # Direct Access clients choose their own ids
                job = replace(job, id=seeded_id(seed, n))
        policy = self._progression_for(conn, job.backend) if PROGRESSION in kinds else None
        run_seconds = 0.0
        if policy is not None and policy.mode is Progression.MANUAL:
            values["held"] = True
            values["release_after_polls"] = policy.release_after_polls
        elif policy is not None and policy.mode is Progression.TIMED:
            if policy.queue_seconds:
                values["not_before"] = utcnow() + timedelta(seconds=policy.queue_seconds)
            run_seconds = policy.run_seconds
        rule = self._take_outcome(conn, job) if OUTCOME in kinds else None
        if rule is not None:
            run_seconds = max(run_seconds, rule.delay_seconds)
            if rule.state.value != "completed":
                outcome = InjectedOutcome(rule.state, rule.reason, rule.reason_code)
                values["outcome"] = json.dumps(outcome.to_json())
        if run_seconds:
            values["min_run_seconds"] = run_seconds
        return job, values


def _use_one(conn: Connection, rule_id: int, remaining: int) -> None:
    """One use of a counted rule: the last use removes it."""
    if remaining <= 1:
        conn.execute(delete(controls).where(controls.c.id == rule_id))
    else:
        conn.execute(
            update(controls)
            .where(controls.c.id == rule_id)
            .values(remaining=controls.c.remaining - 1)
        )
