"""Wake waiters when a job changes state, across threads and into the event loop.

Lets `GET /jobs/{id}` hold a poll for a moment instead of answering "Running" a few
milliseconds before the job completes: the client sleeps 0.5 s between polls, so answering
the first poll with the final state cuts client-observed latency by that much.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict


class JobWatch:
    """Per-job asyncio events, set from any thread when that job's state changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(list)
        )

    def notify(self, job_id: str) -> None:
        """Called by the store after a committed transition (any thread)."""
        with self._lock:
            waiters = self._waiters.pop(job_id, [])
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def wait(self, job_id: str, timeout: float) -> None:
        """Return when the job changes state, or after `timeout` seconds."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters[job_id].append(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                waiters = self._waiters.get(job_id)
                if waiters and entry in waiters:
                    waiters.remove(entry)
                    if not waiters:
                        del self._waiters[job_id]
