"""`GET /workloads`: an instance's standalone jobs and its sessions (and batches) in one list,
with IBM's statuses and cursor paging. Pure types; the store runs the query."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

WORKLOAD_STATUSES = ("pending", "in_progress", "completed", "canceled", "failed")
WORKLOAD_MODES = ("job", "session", "batch")
JOB_STATUS = {
    "queued": "pending",
    "running": "in_progress",
    "completed": "completed",
    "cancelled": "canceled",
    "failed": "failed",
}
"""A job's state as a workload status (sessions: in_progress while open, completed closed)."""


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the (created, id) of the item a page continues from."""

    created: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raises ValueError for anything this class did not encode."""
        try:
            padded = token + "=" * (-len(token) % 4)
            created, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if not isinstance(ident, str) or not isinstance(created, str):
                raise TypeError
            return cls(datetime.fromisoformat(created), ident)
        except (ValueError, TypeError, UnicodeError) as exc:
            raise ValueError("not a workloads cursor") from exc


@dataclass(frozen=True)
class WorkloadFilter:
    """Validated `GET /workloads` query."""

    limit: int = 10
    descending: bool = False  # IBM's default sort is createdAt (oldest first)
    after: Cursor | None = None  # `next`: the items after this one, in sort order
    before: Cursor | None = None  # `previous`: the items before this one
    backend: str | None = None
    search: str | None = None
    statuses: tuple[str, ...] = ()
    mode: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    tags: tuple[str, ...] = ()
    hidden_backends: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    id: str
    created: datetime
    ended: datetime | None
    backend: str
    mode: str
    status: str
    accepting_jobs: bool | None
    status_reason: str | None
    seconds: float | None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkloadPage:
    workloads: list[Workload]
    total: int
    has_previous: bool
    has_next: bool
