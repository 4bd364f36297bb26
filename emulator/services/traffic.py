"""Fault rules, their injector and the request journal: what the HTTP middleware consults.

Fault rules are ordered, first match wins; they live in the store (they persist across
restarts until removed, and every node sees them) and are cached here, reloaded when this
node's control plane changes them and by the traffic thread every quarter second (another
node may have). The journal is shared through the store the same way.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from emulator.domain.errors import InvalidRequest
from emulator.store.controls import ControlStore
from emulator.store.journal import KEEP, JournalStore

APIS = ("runtime", "direct_access", "iam", "s3", "cloud")
ACTIONS = ("respond", "drop", "lost_response", "delay")


# -- fault rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultRule:
    """What to do to matching requests; `times` None means until removed."""

    action: str
    method: str = "*"
    path: str = "*"
    api: str = "*"
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    times: int | None = None
    probability: float | None = None
    id: int | None = None

    @classmethod
    def parse(cls, raw: Any) -> FaultRule:
        if not isinstance(raw, Mapping):
            raise InvalidRequest("body", "must be a JSON object")
        status = raw.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599
        ):
            raise InvalidRequest("status", "must be an HTTP error status, 400..599")
        latency = raw.get("latency_ms", 0)
        if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= 600_000:
            raise InvalidRequest("latency_ms", "must be a whole number of ms, 0..600000")
        default_action = "respond" if status is not None else "delay" if latency else None
        action = raw.get("action", default_action)
        if action not in ACTIONS:
            raise InvalidRequest("action", f"must be one of {', '.join(ACTIONS)}")
        if action == "respond" and status is None:
            raise InvalidRequest("status", "is required for action 'respond'")
        times = raw.get("times")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise InvalidRequest("times", "must be a whole number >= 1")
        probability = raw.get("probability")
        if probability is not None and (
            isinstance(probability, bool)
            or not isinstance(probability, (int, float))
            or not 0 <= probability <= 1
            or not math.isfinite(probability)
        ):
            raise InvalidRequest("probability", "must be a number between 0 and 1")
        retry_after = raw.get("retry_after")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise InvalidRequest("retry_after", "must be a whole number of seconds >= 0")
        api = raw.get("api", "*")
        if api != "*" and api not in APIS:
            raise InvalidRequest("api", f"must be * or one of {', '.join(APIS)}")
        for name in ("method", "path", "code", "message"):
            if raw.get(name) is not None and not isinstance(raw.get(name), str):
                raise InvalidRequest(name, "must be a string")
        return cls(
            action=action,
            method=str(raw.get("method", "*")).upper(),
            path=str(raw.get("path", "*")),
            api=api,
            status=status,
            code=raw.get("code"),
            message=raw.get("message"),
            retry_after=retry_after,
            latency_ms=latency,
            times=times,
            probability=None if probability is None else float(probability),
        )

    def matches(self, method: str, path: str, api: str) -> bool:
        return (
            (self.method == "*" or self.method == method)
            and (self.api == "*" or self.api == api)
            and fnmatch.fnmatchcase(path, self.path)
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """The cached rule list, and the choice of the rule (if any) for one request."""

    def __init__(self) -> None:
        self.store: ControlStore | None = None
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        # Reloads run one at a time, read and assignment together: otherwise the traffic
        # thread's reload, reading just before a rule is added, could assign its stale list
        # after the adding request's own reload, hiding the new rule until the next tick.
        self._reloading = threading.Lock()
        self._random = random.Random()

    def attach(self, store: ControlStore) -> None:
        self.store = store
        self.reload()

    def reload(self) -> None:
        if self.store is None:
            return
        with self._reloading:
            rules = [
                FaultRule(**{**body, "times": remaining, "id": rule_id})
                for rule_id, body, remaining in self.store.faults()
            ]
            with self._lock:
                self._rules = rules

    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._random = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        assert self.store is not None
        body = {k: v for k, v in rule.to_json().items() if k not in {"id", "times"}}
        rule_id = self.store.add_fault(body, rule.times)
        self.reload()
        return FaultRule(**{**body, "times": rule.times, "id": rule_id})

    @property
    def active(self) -> bool:
        """Whether any rule exists (read without the lock: a stale answer costs one request)."""
        return bool(self._rules)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def pick(self, method: str, path: str, api: str) -> FaultRule | None:
        """The first matching rule that fires for this request (using up one of its times)."""
        if api == "admin" or self.store is None:
            return None
        with self._lock:
            candidates = [r for r in self._rules if r.matches(method, path, api)]
        for rule in candidates:
            if rule.probability is not None:
                with self._lock:
                    fires = self._random.random() < rule.probability
                if not fires:
                    continue
            if rule.times is not None:
                assert rule.id is not None
                if not self.store.use_fault(rule.id):
                    continue
                self.reload()
            return rule
        return None


# -- the journal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalEntry:
    at: float
    method: str
    path: str
    api: str
    status: int | None
    duration_ms: float
    instance: str | None
    fault: dict[str, Any] | None
    node: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.at)) + (
            f".{int((self.at % 1) * 1_000_000):06d}Z"
        )
        return out


class RequestJournal:
    """Recent requests of every node on the store, newest last.

    `add` costs the request path an append to a list; a background thread (`run`) writes the
    batch to the store every FLUSH_S, so a request never waits for the journal's write. Without
    a store (tests), entries stay in memory.
    """

    FLUSH_S = 0.25

    def __init__(self, size: int = 1000, node: str = "") -> None:
        self.node = node
        self.store: JournalStore | None = None
        self._pending: list[JournalEntry] = []
        self._memory: deque[JournalEntry] = deque(maxlen=size)
        self._lock = threading.Lock()

    def attach(self, store: JournalStore, node: str) -> None:
        self.store, self.node = store, node

    def add(self, entry: JournalEntry) -> None:
        with self._lock:
            if self.store is None:
                self._memory.append(entry)
            else:
                self._pending.append(entry)

    def flush(self) -> None:
        """Write what was added since the last flush (one transaction)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if batch and self.store is not None:
            # The store keeps its newest KEEP rows: older ones of a burst are never written.
            # (vars(), not asdict(): asdict deep-copies every field, a cost per request.)
            rows = [{**vars(e), "node": self.node} for e in batch[-KEEP:]]
            self.store.append(rows)

    def entries(self, limit: int = 1000) -> list[JournalEntry]:
        if self.store is None:
            with self._lock:
                return list(self._memory)[-limit:]
        self.flush()  # this node's latest requests too
        return [JournalEntry(**row) for row in self.store.newest(limit)]

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
            self._pending.clear()
        if self.store is not None:
            self.store.clear()


def keep_traffic_shared(
    journal: RequestJournal, faults: FaultInjector, stop: threading.Event
) -> None:
    """The node's traffic thread: flush the journal and reload the fault rules (another node
    may have changed them) every FLUSH_S, until `stop`."""
    log = logging.getLogger("emulator.traffic")
    while not stop.wait(RequestJournal.FLUSH_S):
        try:
            journal.flush()
            faults.reload()
        except Exception:  # noqa: BLE001 - e.g. the database briefly locked: next tick
            log.exception("could not flush the request journal")
    journal.flush()
