"""Wake waiters when a job changes state, across threads and into the event loop.

Lets `GET /jobs/{id}` hold a poll for a moment instead of answering "Running" a few
milliseconds before the job completes: the client sleeps 0.5 s between polls, so answering
the first poll with the final state cuts client-observed latency by that much.
"""

from __future__ import annotations

import asyncio
import threading
from asyncio import FIRST_COMPLETED
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


RECHECK_S = 0.1
"""A held poll also re-reads this often when no change channel tells this process of other
processes' changes (SQLite, or PostgreSQL while the listener reconnects): the polling
fallback for a job run by a worker node on the same store."""
LISTENING_RECHECK_S = 1.0
"""The re-read while PostgreSQL's notifications flow: only a safety net then."""


class JobWatch:
    """Per-job asyncio events, set from any thread when that job's state changes."""

    def __init__(self, recheck: float = RECHECK_S) -> None:
        self.recheck = recheck
        self._closing = False
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(list)
        )

    def listening(self, flowing: bool) -> None:
        """Told by the store's change listener whether other processes' changes reach us."""
        self.recheck = LISTENING_RECHECK_S if flowing else RECHECK_S

    @property
    def waiting(self) -> int:
        """Held polls waiting now (the control plane's info shows it)."""
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def release_all(self) -> None:
        """The server is stopping: every held poll answers now, with what it last read."""
        with self._lock:
            self._closing = True
            waiters = [w for entries in self._waiters.values() for w in entries]
            self._waiters.clear()
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def notify(self, job_id: str, state: str = "") -> None:
        """Called after a committed change of the job, by this process or another (any
        thread)."""
        with self._lock:
            waiters = self._waiters.pop(job_id, [])
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def wait_until_final(
        self,
        job_id: str,
        read: Callable[[], Awaitable[T]],
        is_final: Callable[[T], bool],
        timeout: float,
        first: Callable[[], Awaitable[T]] | None = None,
        abandoned: Callable[[], Awaitable[object]] | None = None,
    ) -> T:
        """`read()` again on each change of the job until `is_final`, or `timeout` runs out.

        `first`, if given, is the first read (e.g. one that also counts the poll). The waiter
        is registered before each read, so a change between the read and the wait is never
        missed (it sets the event early instead). `abandoned`, if given, completes when the
        client has gone: the wait ends then (with the last read), as it does at shutdown
        (`release_all`). While waiting, a poll holds an event and nothing else: no thread, no
        store connection.
        """
        next_read = first or read
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        gone: asyncio.Future[object] | None = None
        try:
            while True:
                event = asyncio.Event()
                entry = (loop, event)
                with self._lock:
                    closing = self._closing
                    if not closing:
                        self._waiters[job_id].append(entry)
                try:
                    value = await next_read()
                    next_read = read
                    remaining = deadline - loop.time()
                    if is_final(value) or remaining <= 0 or closing:
                        return value
                    if abandoned is not None and gone is None:
                        gone = asyncio.ensure_future(abandoned())
                    changed = asyncio.ensure_future(event.wait())
                    waits: set[asyncio.Future[Any]] = {changed} | ({gone} if gone else set())
                    await asyncio.wait(
                        waits, timeout=min(remaining, self.recheck), return_when=FIRST_COMPLETED
                    )
                    changed.cancel()
                    if gone is not None and gone.done():
                        return value
                finally:
                    self._forget(job_id, entry)
        finally:
            if gone is not None:
                gone.cancel()

    def _forget(self, job_id: str, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            waiters = self._waiters.get(job_id)
            if waiters and entry in waiters:
                waiters.remove(entry)
                if not waiters:
                    del self._waiters[job_id]
