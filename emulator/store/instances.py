"""Instance configuration set through the API (`PUT /instances/configuration`).

An instance's own usage limit is a row of the controls table (kind `instance_limit`, scope the
CRN), so every node on the store enforces it and it survives restarts; without a row the
server's `--usage-limits` apply.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Engine, delete, insert

from emulator.domain.errors import UsageExceedsLimit
from emulator.domain.jobs import utcnow
from emulator.store.db import reading
from emulator.store.tables import controls
from emulator.store.usage import INSTANCE_LIMIT, consumed_seconds, instance_limits_in


class InstanceSettings:
    """Read and replace the instances' own limits."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def limits(self, instance: str | None = None) -> dict[str, float]:
        with reading(self.engine, single=True) as conn:
            return instance_limits_in(conn, instance)

    def replace_limit(self, instance: str, seconds: float | None, since: datetime) -> None:
        """Set the instance's limit, or with None remove it (the server's applies again).

        Raises UsageExceedsLimit when the instance has already used more than `seconds` since
        `since` (the period's start); the check and the write are one transaction.
        """
        with self.engine.begin() as conn:
            if seconds is not None:
                used = consumed_seconds(conn, instance, since)
                if used > seconds:
                    raise UsageExceedsLimit(
                        f"Usage exceeds instance limit: {used:.3f} seconds already used this "
                        f"period, more than the {seconds:g} asked for."
                    )
            conn.execute(
                delete(controls).where(
                    controls.c.kind == INSTANCE_LIMIT, controls.c.scope == instance
                )
            )
            if seconds is not None:
                conn.execute(
                    insert(controls).values(
                        kind=INSTANCE_LIMIT,
                        scope=instance,
                        body=json.dumps({"seconds": seconds}),
                        created_at=utcnow(),
                    )
                )
