"""The app's service container, built once in the lifespan, and the per-request accessors every
route uses (the container, the caller's instance and owner) — one copy for every surface."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from emulator.config import Instance, Settings
from emulator.domain.backends import BackendRegistry
from emulator.domain.jobs import Owner
from emulator.services.access import AccessPolicy
from emulator.services.control import ControlService
from emulator.services.hooks import ExecutionHooks
from emulator.services.jobs import JobService
from emulator.services.sessions import SessionService


@dataclass
class EmulatorState:
    """What routes may use: settings and services; never the store or the worker pool."""

    settings: Settings
    access: AccessPolicy
    backends: BackendRegistry
    jobs: JobService
    sessions: SessionService
    control: ControlService
    execution: ExecutionHooks


def state_of(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def instance_of(request: Request) -> Instance:
    """The caller's instance, resolved by the Tenancy middleware."""
    instance: Instance = request.state.instance
    return instance


def owner_of(request: Request) -> Owner:
    """The caller's instance through this API: every service call about jobs needs it."""
    owner: Owner = request.state.owner
    return owner
