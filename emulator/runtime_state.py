"""What the running app holds: built once in the lifespan, read by every route."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.auth import AccessPolicy
from emulator.config import Settings
from emulator.control.service import ControlService
from emulator.execution.pool import WorkerPool
from emulator.jobs.backends import BackendRegistry
from emulator.jobs.service import JobService
from emulator.jobs.session_service import SessionService
from emulator.jobs.watch import JobWatch
from emulator.store.repository import Repository


@dataclass
class EmulatorState:
    settings: Settings
    access: AccessPolicy
    backends: BackendRegistry
    repo: Repository
    jobs: JobService
    pool: WorkerPool | None
    watch: JobWatch
    sessions: SessionService
    control: ControlService
