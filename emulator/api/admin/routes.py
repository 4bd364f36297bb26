"""The emulator's own control plane under `/_emulator` (grows in a later issue)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator import __version__
from emulator.runtime_state import EmulatorState


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def health(request: Request) -> Response:
    """200 once the server accepts jobs (workers may still be warming up: jobs just queue)."""
    state = _state(request)
    counts = await run_in_threadpool(state.repo.count_by_state)
    pool = state.pool
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "workers": len(pool.slots) if pool else 0,
            "workers_ready": pool.ready_workers if pool else 0,
            "jobs": counts,
        }
    )


async def info(request: Request) -> Response:
    """What this emulator serves: version, instances (default first), backends, settings."""
    state = _state(request)
    settings = state.settings
    return JSONResponse(
        {
            "version": __version__,
            "instances": [{"name": i.name, "crn": i.crn} for i in state.access.instances],
            "default_instance": state.access.default_instance.crn,
            "api_keys_required": not state.access.open,
            "backends": [
                {
                    "name": b.name,
                    "snapshot": b.snapshot.source,
                    "qubits": b.num_qubits,
                    "mock": b.mock,
                }
                for b in state.backends.all()
            ],
            "workers": settings.workers,
            "database": "sqlite" if not settings.database_url else "external",
        }
    )


routes = [Route("/health", health), Route("/info", info)]
