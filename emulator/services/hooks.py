"""What the services may ask of the execution layer, as a protocol: the worker pool implements
it, and no service imports the pool itself."""

from __future__ import annotations

from typing import Protocol


class ExecutionHooks(Protocol):
    """Implemented by `execution.supervisor.WorkerPool`."""

    @property
    def workers(self) -> int:
        """Simulation processes this node runs (0: jobs stay Queued here)."""
        ...

    @property
    def ready_workers(self) -> int:
        """Of those, the ones done importing and warming up."""
        ...

    def job_submitted(self) -> None:
        """A job may be claimable now: wake an idle worker."""
        ...

    def job_cancelled(self, job_id: str) -> None:
        """Stop the simulation of `job_id` if a worker of this node runs it."""
        ...


class NoExecution:
    """No workers on this node (`--workers 0`, or an API-only process)."""

    workers = 0
    ready_workers = 0

    def job_submitted(self) -> None:
        pass

    def job_cancelled(self, job_id: str) -> None:
        pass
