"""Job changes across processes: PostgreSQL `LISTEN/NOTIFY`, or nothing (polling fallback).

Every write transaction that changes jobs sends one `pg_notify` per job before it commits
(`Transactions`), so PostgreSQL delivers them exactly when, and only if, the change is
visible. Each node keeps one listening connection (`ChangeListener`) and hands the job id and
its new state to its own waiters: held status polls on API nodes, the slots of worker nodes
(a cancel stops the simulation, a queued job wakes an idle slot). SQLite has no such channel:
there, as while a listener reconnects, the waiters re-read on their own (their recheck).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("emulator.signals")

CHANNEL = "emulator_jobs"
RECONNECT_S = 1.0

Change = Callable[[str, str], None]
"""Told of one committed change: (job id, its new state)."""


def publish(conn: Connection, changed: Mapping[str, str]) -> None:
    """Queue a notification per changed job on the transaction (PostgreSQL; else nothing)."""
    if not changed or conn.dialect.name != "postgresql":
        return
    conn.execute(
        text("SELECT pg_notify(:channel, change) FROM unnest(CAST(:changes AS text[])) AS change"),
        {"channel": CHANNEL, "changes": [f"{job} {state}" for job, state in changed.items()]},
    )


class ChangeListener:
    """One LISTEN connection per node, on a thread; tells `on_change` of every job change.

    `on_listening(True|False)` says whether notifications are flowing, so waiters can relax
    their recheck while they are and tighten it while the connection is being re-made.
    """

    def __init__(
        self,
        engine: Engine,
        on_change: Change,
        on_listening: Callable[[bool], None] | None = None,
    ) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._on_change = on_change
        self._on_listening = on_listening or (lambda _: None)
        self._stop = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listen-jobs", daemon=True)

    @staticmethod
    def for_engine(
        engine: Engine, on_change: Change, on_listening: Callable[[bool], None] | None = None
    ) -> ChangeListener | None:
        """A listener for a PostgreSQL store; None for SQLite (no channel: waiters poll)."""
        if engine.dialect.name != "postgresql":
            return None
        return ChangeListener(engine, on_change, on_listening)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg  # the postgres extra; only a PostgreSQL store gets here

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening(True)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._dispatch(note.payload)
            except Exception as exc:  # noqa: BLE001 - the database restarting, a network blip
                if not self._stop.is_set():
                    log.warning("job change listener lost its connection (%s); reconnecting", exc)
            finally:
                self._listening(False)
            self._stop.wait(RECONNECT_S)

    def _listening(self, flowing: bool) -> None:
        if flowing != self.listening.is_set():
            (self.listening.set if flowing else self.listening.clear)()
            self._on_listening(flowing)

    def _dispatch(self, payload: str) -> None:
        job_id, _, state = payload.partition(" ")
        try:
            self._on_change(job_id, state)
        except Exception:  # noqa: BLE001 - one waiter's defect must not stop the channel
            log.exception("a job change handler failed for %s", job_id)


def fan_out(*handlers: Change | None) -> Change:
    """One `Change` that tells every given handler."""
    present = [h for h in handlers if h is not None]

    def tell(job_id: str, state: str) -> None:
        for handler in present:
            handler(job_id, state)

    return tell

