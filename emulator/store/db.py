"""Engine creation: SQLite pragmas, write transactions that take the lock up front, and the
schema brought to the head migration (store.migrate)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from emulator.store.migrate import migrate

POOL_CONNECTIONS = 40
"""SQLite connections kept (and as many more on demand): one per thread that may touch the
store at once (anyio's 40 request threads; the read threads, slots and background threads
stay below the overflow)."""


def create_store_engine(url: str) -> Engine:
    """Open (and create) the store. SQLite gets WAL, foreign keys and `BEGIN IMMEDIATE`."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # WAL readers run in parallel: the default pool (5 + 10) made reads queue.
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=POOL_CONNECTIONS,
            max_overflow=POOL_CONNECTIONS,
        )
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)  # 5 + 10: PostgreSQL's slots are shared
    migrate(engine)
    return engine


def reading(engine: Engine, single: bool = False) -> Connection:
    """A connection that only reads: on SQLite it never takes the write lock (a plain
    `engine.connect()` begins IMMEDIATE, as writers must). `single`: it runs one statement,
    so it needs no transaction of its own (saves a BEGIN per read)."""
    return engine.connect().execution_options(read_only=True, single_read=single)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A transaction that reads then writes must hold the write lock from its start,
        # or two of them deadlock into "database is locked". Pure reads stay deferred, and
        # a single read needs no BEGIN at all: its statement is its own transaction.
        options = conn.get_execution_options()
        if options.get("single_read"):
            return
        mode = "DEFERRED" if options.get("read_only") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def _enable_wal(cursor: Any, attempts: int = 100) -> None:
    """Switch the file to WAL (persistent: a no-op once done). Processes opening a new file at
    once race for the switch's exclusive lock, and SQLite reports "locked" at once rather than
    through its busy handler, so retry for a few seconds."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
