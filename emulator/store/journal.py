"""The request journal's rows: appended in batches, read newest last, trimmed to a size."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select

from emulator.store.db import reading
from emulator.store.tables import request_journal

KEEP = 5000
"""Rows kept in the store (all nodes together); older ones are dropped at each flush."""


class JournalStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert a batch of entries (one transaction) and trim the table to KEEP rows."""
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(
                insert(request_journal),
                [
                    {**row, "fault": json.dumps(row["fault"]) if row["fault"] else None}
                    for row in rows
                ],
            )
            newest = conn.execute(select(func.max(request_journal.c.id))).scalar_one()
            conn.execute(delete(request_journal).where(request_journal.c.id <= newest - KEEP))

    def newest(self, limit: int) -> list[dict[str, Any]]:
        """The last `limit` entries of every node, oldest first."""
        with reading(self.engine, single=True) as conn:
            rows = (
                conn.execute(
                    select(request_journal).order_by(request_journal.c.id.desc()).limit(limit)
                )
                .mappings()
                .all()
            )
        out = [dict(r) for r in reversed(rows)]
        for row in out:
            row.pop("id", None)
            row["fault"] = json.loads(row["fault"]) if row["fault"] else None
        return out

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(request_journal))
