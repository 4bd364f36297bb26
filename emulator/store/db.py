"""Engine creation: SQLite pragmas and write transactions that take the lock up front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect

from emulator.store.tables import metadata


def create_store_engine(url: str) -> Engine:
    """Open (and create) the store. SQLite gets WAL, foreign keys and `BEGIN IMMEDIATE`."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Bring a data dir from an older version up to date: add the columns it lacks.

    Columns are only ever added (nullable, or with a server default), so this is the whole
    migration story until a change needs more.
    """
    # Read the schema first: on SQLite the inspector's own connection would wait forever for
    # the write lock of a transaction already open in this thread.
    existing = inspect(engine)
    statements = []
    for table in metadata.sorted_tables:
        have = {c["name"] for c in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            default = ""
            if column.server_default is not None:
                value = column.server_default.arg  # type: ignore[attr-defined]
                rendered = (
                    value.compile(dialect=engine.dialect) if hasattr(value, "compile") else value
                )
                default = f" DEFAULT {rendered}"
            null = "" if column.nullable else " NOT NULL"
            statements.append(
                f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}{default}{null}'
            )
    if statements:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A transaction that reads then writes must hold the write lock from its start,
        # or two of them deadlock into "database is locked". Pure reads stay deferred.
        mode = "DEFERRED" if conn.get_execution_options().get("read_only") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")
