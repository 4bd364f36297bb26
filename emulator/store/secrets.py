"""Secrets every node of one store shares, created once by whichever node starts first."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from emulator.domain.jobs import utcnow
from emulator.store.tables import node_secrets

TOKEN_SIGNING = "token-signing"


def shared_secret(engine: Engine, name: str, adopt: Path | None = None) -> bytes:
    """The secret `name` of this store: created (32 random bytes) on first use — or taken from
    the file `adopt`, the key an earlier release kept in the data dir, so tokens it issued stay
    valid. Nodes starting at once agree: the first insert wins, the others read it."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(node_secrets.c.value).where(node_secrets.c.name == name)
        ).scalar()
    if stored is not None:
        return bytes(stored)
    value = adopt.read_bytes() if adopt is not None and adopt.is_file() else None
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(node_secrets).values(
                    name=name, value=value or secrets.token_bytes(32), created_at=utcnow()
                )
            )
    except IntegrityError:
        pass  # another node created it first: use theirs
    with engine.connect() as conn:
        return bytes(
            conn.execute(
                select(node_secrets.c.value).where(node_secrets.c.name == name)
            ).scalar_one()
        )
