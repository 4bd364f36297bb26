"""Final jobs' snapshots in memory: a status poll of a finished job reads no store at all.

A job in a final state changes only by an API request (its tags replaced, the job deleted, a
control-plane reset), never by a worker, so its snapshot can be kept as long as this process
hears of those requests:
- `ALONE` — the only API node on its store (no `--database-url`): every such change is made
  by this process, and drops the entry before the request that made it answers;
- `LISTENING` — PostgreSQL with the change channel flowing: other nodes' changes arrive as
  notifications within milliseconds (the whole cache is dropped when the channel breaks or
  comes back, for what it may have missed);
- `BRIEF` — a shared SQLite file (no channel): entries live `BRIEF_TTL_S`, the bound on how
  long another API node's tag change or delete may go unseen here.
Entries never hold params (the `exclude_params` view) and a put that raced an invalidation
is refused (generation check), so a read can never re-insert what a change just dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

from emulator.domain.jobs import TERMINAL, JobSnapshot

BRIEF_TTL_S = 1.0
_SLOTS = 4096  # striped generations: a collision only refuses a put


class Coherence(Enum):
    ALONE = "alone"
    LISTENING = "listening"
    BRIEF = "brief"
    OFF = "off"  # PostgreSQL while its channel is down


class SnapshotCache:
    """Bounded LRU of final jobs' snapshots, keyed by job id."""

    def __init__(self, coherence: Coherence = Coherence.ALONE, capacity: int = 20_000) -> None:
        self._coherence = coherence
        self._capacity = capacity
        self._items: OrderedDict[str, tuple[JobSnapshot, float]] = OrderedDict()
        self._generations = [0] * _SLOTS
        self._epoch = 0
        self._lock = threading.Lock()

    @property
    def coherence(self) -> Coherence:
        return self._coherence

    def set_coherence(self, coherence: Coherence) -> None:
        """Change how far entries can be trusted; what was cached before is dropped."""
        with self._lock:
            self._coherence = coherence
            self._drop_all()

    def get(self, job_id: str) -> JobSnapshot | None:
        with self._lock:
            entry = self._items.get(job_id)
            if entry is None:
                return None
            snapshot, expires = entry
            if expires < time.monotonic():
                del self._items[job_id]
                return None
            self._items.move_to_end(job_id)
            return snapshot

    def generation(self, job_id: str) -> tuple[int, int]:
        """Taken before a store read; `put` refuses the result if the job changed since."""
        with self._lock:
            return self._epoch, self._generations[hash(job_id) % _SLOTS]

    def marks(self) -> Callable[[str], tuple[int, int]]:
        """Every job's `generation` at once, for a read of jobs not known in advance (a list
        page): taken before the read, as `generation` is."""
        with self._lock:
            epoch, generations = self._epoch, list(self._generations)
        return lambda job_id: (epoch, generations[hash(job_id) % _SLOTS])

    def put(self, snapshot: JobSnapshot, generation: tuple[int, int]) -> None:
        if snapshot.state not in TERMINAL or snapshot.params is not None:
            return
        with self._lock:
            if self._coherence is Coherence.OFF:
                return
            if generation != (self._epoch, self._generations[hash(snapshot.id) % _SLOTS]):
                return
            ttl = BRIEF_TTL_S if self._coherence is Coherence.BRIEF else float("inf")
            self._items[snapshot.id] = (snapshot, time.monotonic() + ttl)
            self._items.move_to_end(snapshot.id)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def drop(self, job_id: str) -> None:
        """The job changed (or may have): forget it, and refuse puts read before now."""
        with self._lock:
            if job_id == ALL:
                self._drop_all()
                return
            self._generations[hash(job_id) % _SLOTS] += 1
            self._items.pop(job_id, None)

    def _drop_all(self) -> None:
        self._epoch += 1
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


ALL = "*"
"""The job id of a change to every job (a control-plane reset)."""
