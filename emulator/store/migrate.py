"""Schema migrations with Alembic, run by every node at start (`serve`, `worker`).

Idempotent and safe when several nodes start at once: the whole upgrade runs in one
transaction that first takes a lock — PostgreSQL's advisory lock, SQLite's write lock (the
engine begins write transactions IMMEDIATE) — so the second node finds the first's work done.
A data dir made before Alembic (tables, no `alembic_version`) is brought up to the baseline's
columns the way older releases did it (adding missing columns), stamped, then upgraded.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine.interfaces import ReflectedColumn

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"
_LOCK_KEY = 0x454D55  # "EMU": one advisory lock for the emulator's schema


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """The revision the code expects."""
    script = ScriptDirectory.from_config(_config(None))  # type: ignore[arg-type]
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision a store is at (None: not under Alembic yet, or empty)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the store to the head revision."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        tables = set(inspect(conn).get_table_names())
        config = _config(conn)
        if "alembic_version" not in tables and "jobs" in tables:
            _add_missing_columns(conn)
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")


def _add_missing_columns(conn: Connection) -> None:
    """A pre-Alembic data dir: add the baseline's columns it lacks (as older releases did at
    start: columns were only ever added, nullable or with a server default). Later columns
    come from their migrations, so the baseline's own are read from a scratch database."""
    baseline = _baseline_columns()
    existing = inspect(conn)
    for table in existing.get_table_names():
        have = {c["name"] for c in existing.get_columns(table)}
        for column in baseline.get(table, []):
            if column["name"] in have:
                continue
            kind = column["type"].compile(dialect=conn.dialect)
            default = "" if column["default"] is None else f" DEFAULT {column['default']}"
            null = "" if column["nullable"] else " NOT NULL"
            conn.exec_driver_sql(
                f'ALTER TABLE {table} ADD COLUMN "{column["name"]}" {kind}{default}{null}'
            )


def _baseline_columns() -> dict[str, list[ReflectedColumn]]:
    """Every table's columns at the baseline revision (migrated into memory, reflected)."""
    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as conn:
            command.upgrade(_config(conn), BASELINE)
            reflected = inspect(conn)
            return {t: reflected.get_columns(t) for t in reflected.get_table_names()}
    finally:
        scratch.dispose()
