"""Wake waiters when a job changes state, across threads and into the event loop.

Lets `GET /jobs/{id}` hold a poll for a moment instead of answering "Running" a few
milliseconds before the job completes: the client sleeps 0.5 s between polls, so answering
the first poll with the final state cuts client-observed latency by that much.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TypeVar

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
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(list)
        )

    def listening(self, flowing: bool) -> None:
        """Told by the store's change listener whether other processes' changes reach us."""
        self.recheck = LISTENING_RECHECK_S if flowing else RECHECK_S

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
    ) -> T:
        """`read()` again on each change of the job until `is_final`, or `timeout` runs out.

        `first`, if given, is the first read (e.g. one that also counts the poll). The waiter
        is registered before each read, so a change between the read and the wait is never
        missed (it sets the event early instead).
        """
        next_read = first or read
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = asyncio.Event()
            entry = (loop, event)
            with self._lock:
                self._waiters[job_id].append(entry)
            try:
                value = await next_read()
                next_read = read
                remaining = deadline - loop.time()
                if is_final(value) or remaining <= 0:
                    return value
                try:
                    await asyncio.wait_for(event.wait(), min(remaining, self.recheck))
                except TimeoutError:
                    pass
            finally:
                self._forget(job_id, entry)

    def _forget(self, job_id: str, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            waiters = self._waiters.get(job_id)
            if waiters and entry in waiters:
                waiters.remove(entry)
                if not waiters:
                    del self._waiters[job_id]
