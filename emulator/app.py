"""`create_app(settings)`: the only place the pieces are wired together."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator.api.admin import errors as admin_errors
from emulator.api.admin import routes as admin
from emulator.api.cloud import routes as cloud
from emulator.api.direct_access import errors as direct_access_errors
from emulator.api.direct_access import routes as direct_access
from emulator.api.runtime import errors as runtime_errors
from emulator.api.runtime import routes as runtime
from emulator.api.state import EmulatorState
from emulator.api.storage import create_storage_app
from emulator.api.traffic import TrafficMiddleware, api_of
from emulator.config import Settings
from emulator.domain.backends import BackendRegistry
from emulator.domain.storage_urls import StoragePolicy
from emulator.execution.supervisor import WorkerPool
from emulator.services.access import AccessPolicy
from emulator.services.control import ControlService
from emulator.services.hooks import NoExecution
from emulator.services.jobs import JobService
from emulator.services.sessions import SessionService
from emulator.services.traffic import FaultInjector, RequestJournal, keep_traffic_shared
from emulator.services.watch import JobWatch
from emulator.store.cache import Coherence, SnapshotCache
from emulator.store.controls import ControlStore
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository
from emulator.store.journal import JournalStore
from emulator.store.secrets import TOKEN_SIGNING, shared_secret
from emulator.store.sessions import SessionStore
from emulator.store.signals import ChangeListener, fan_out

log = logging.getLogger("emulator")

RUNTIME_PREFIX = "/api/v1"


class RuntimePrefix:
    """Serve the Runtime API under any path prefix ending in `/api/v1`.

    The client is pointed at `…/experimental/api/v1` (a URL containing "experimental" is the
    only one it uses verbatim), and users may choose other prefixes; the cloud stand-ins'
    own prefixes are left alone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            index = path.find(RUNTIME_PREFIX + "/")
            if index > 0 and not path.startswith(
                (cloud.CATALOG_PREFIX, cloud.SEARCH_PREFIX, cloud.IAM_PREFIX)
            ):
                scope = dict(scope)
                scope["path"] = path[index:]
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def not_found(request: Request, exc: Exception) -> Response:
    """A path no surface's mount matched, in the envelope of the API its prefix names.

    A mount matches its remainder with `.*`, which stops at a line break: a path parameter
    holding a decoded newline (`/api/v1/backends/a%0Ab/configuration`) reaches this app's
    router, not the surface's, and would otherwise get Starlette's plain-text 404.
    """
    path = request.url.path
    for prefix, render in (
        (RUNTIME_PREFIX + "/", runtime_errors.render),
        ("/v1/", direct_access_errors.render),
        ("/_emulator/", admin_errors.render),
    ):
        if path.startswith(prefix):
            return render(request, exc)
    return JSONResponse({"detail": "Not Found"}, status_code=404)


class ObjectStoreDispatch:
    """Send S3 requests (recognised by their signing) to the built-in object store.

    qrmi is given one base URL for IAM, the API and S3; S3 paths are `/{bucket}/{key}` and
    could be anything, so requests are told apart by S3 markers rather than by path.
    """

    def __init__(self, app: ASGIApp, storage: ASGIApp) -> None:
        self.app = app
        self.storage = storage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and api_of(scope) == "s3":
            await self.storage(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class EmulatorApp:
    """The ASGI app, and what the server calls as it begins to stop (`before_shutdown`)."""

    def __init__(self, app: ASGIApp, stopping: list[Callable[[], None]]) -> None:
        self.app = app
        self._stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def before_shutdown(self) -> None:
        """Before the server waits for open requests: held status polls answer now."""
        for release in self._stopping:
            release()


@dataclass
class Node:
    """What one server process runs: the services routes see, and what it starts and stops."""

    state: EmulatorState
    engine: Engine
    pool: WorkerPool | None
    listener: ChangeListener | None = None


def _pool(settings: Settings, repo: Repository, backends: BackendRegistry) -> WorkerPool:
    return WorkerPool(
        repo,
        backends,
        settings.workers,
        max_attempts=settings.job_max_attempts,
        usage_limits=settings.instance_limits.usage,
        memory_mb=settings.worker_memory_mb,
        max_decoded_bytes=settings.max_decoded_bytes,
        max_input_bytes=settings.max_object_mb * 1024 * 1024,
        stale_after=float(settings.worker_stale_seconds),
        methods=settings.methods,
        max_job_seconds=settings.max_job_seconds,
        device=settings.device,
    )


@dataclass
class WorkerNode:
    """A worker node: the store, a pool and its change listener, no HTTP."""

    pool: WorkerPool
    engine: Engine
    listener: ChangeListener | None

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop()
        if self.listener is not None:
            self.listener.stop()
        self.engine.dispose()


def _coherence(engine: Engine, settings: Settings) -> Coherence:
    """How far this API node can trust cached final snapshots (store.cache)."""
    if not settings.database_url:
        return Coherence.ALONE  # the only API node of its data dir
    if engine.dialect.name == "postgresql":
        return Coherence.OFF  # LISTENING once the change channel flows
    return Coherence.BRIEF  # a shared SQLite file: no channel


def build_worker_node(settings: Settings) -> WorkerNode:
    """A worker node (`python -m emulator worker`)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_store_engine(settings.effective_database_url)
    pool = _pool(settings, Repository(engine), BackendRegistry(settings.backends))
    return WorkerNode(pool, engine, ChangeListener.for_engine(engine, pool.job_changed))


def build_node(
    settings: Settings,
    *,
    start_workers: bool = True,
    journal: RequestJournal | None = None,
    faults: FaultInjector | None = None,
) -> Node:
    """Open the store and (optionally) the worker pool for `settings`."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_store_engine(settings.effective_database_url)
    watch = JobWatch()
    cache = SnapshotCache(_coherence(engine, settings))
    repo = Repository(engine, on_transition=watch.notify, cache=cache)
    backends = BackendRegistry(settings.backends)
    # Shared by every node of the store; a data dir's key of an earlier release is adopted.
    secret = shared_secret(engine, TOKEN_SIGNING, adopt=settings.data_dir / "token-secret")
    access = AccessPolicy(settings, secret)
    pool = _pool(settings, repo, backends) if start_workers else None
    # Other processes' changes (PostgreSQL): held polls end, local slots hear of cancels.
    def listening(flowing: bool) -> None:
        repo.cache.set_coherence(Coherence.LISTENING if flowing else Coherence.OFF)
        watch.listening(flowing)

    listener = ChangeListener.for_engine(
        engine,
        fan_out(
            lambda job_id, _: repo.cache.drop(job_id),
            watch.notify,
            pool.job_changed if pool else None,
        ),
        listening,
    )
    session_store = SessionStore(repo, settings.session_policy)
    controls = ControlStore(engine)
    journal = journal or RequestJournal()
    journal.attach(JournalStore(engine), settings.effective_node_name)
    faults = faults or FaultInjector()
    faults.attach(controls)
    faults.seed(controls.seed())
    jobs = JobService(
        repo,
        backends,
        hooks=pool,
        lanes=settings.lane_limit,
        reservations=settings.reservation_list,
        sessions=session_store,
        limits=settings.instance_limits,
        controls=controls,
        max_decoded_bytes=settings.max_decoded_bytes,
        storage_policy=StoragePolicy(settings.port, settings.host, settings.storage_allowed_hosts),
        watch=watch,
        shared_store=bool(settings.database_url),
    )
    sessions = SessionService(session_store, backends)
    control = ControlService(
        settings, repo, controls, jobs, session_store, backends, pool, journal, faults
    )
    state = EmulatorState(
        settings, access, backends, jobs, sessions, control, pool or NoExecution()
    )
    return Node(state, engine, pool, listener)


def create_app(settings: Settings, *, start_workers: bool = True) -> ASGIApp:
    """The ASGI app serving every API on one port."""

    # Built before the store opens: the traffic middleware sits outside the Starlette app.
    journal, faults = RequestJournal(), FaultInjector()
    stopping: list[Callable[[], None]] = []  # what the server calls as it begins to stop

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        node = build_node(settings, start_workers=start_workers, journal=journal, faults=faults)
        app.state.emulator = node.state
        stopping.append(node.state.jobs.watch.release_all)
        if node.listener is not None:
            node.listener.start()
        if node.pool is not None:
            node.pool.start()
        stop_settling = threading.Event()
        settler = threading.Thread(
            target=node.state.sessions.settle_forever, args=(stop_settling,), daemon=True
        )
        settler.start()
        traffic = threading.Thread(
            target=keep_traffic_shared, args=(journal, faults, stop_settling), daemon=True
        )
        traffic.start()
        # Everything built so far (qiskit, backend snapshots, noise data) lives as long as the
        # server: keep it out of the collector's scans, which otherwise stall the event loop
        # for a tenth of a second whenever a full collection comes round.
        gc.freeze()
        proxy = None
        if settings.intercept_port:
            from emulator.intercept import InterceptProxy, LocalCA

            upstream = f"http://127.0.0.1:{settings.port}"
            proxy = InterceptProxy(
                LocalCA(settings.data_dir / "intercept"), upstream, port=settings.intercept_port
            )
            await proxy.start()
        app.state.intercept = proxy
        try:
            yield
        finally:
            if proxy is not None:
                await proxy.stop()
            stop_settling.set()
            settler.join(5)
            traffic.join(5)
            if node.pool is not None:
                node.pool.stop()
            if node.listener is not None:
                node.listener.stop()
            node.engine.dispose()

    app = Starlette(
        routes=[
            Route("/api/openapi.json", runtime.openapi_json),
            Route("/api/openapi-{version}.json", runtime.openapi_versioned_json),
            Mount(RUNTIME_PREFIX, routes=runtime.routes, middleware=runtime.middleware),
            Mount("/v1", routes=direct_access.routes, middleware=direct_access.middleware),
            *direct_access.version_routes,
            Mount("/_emulator", routes=admin.routes, middleware=admin.middleware),
            *cloud.routes,
        ],
        lifespan=lifespan,
        exception_handlers={404: not_found},
    )
    storage = create_storage_app(settings)
    traffic = TrafficMiddleware(ObjectStoreDispatch(RuntimePrefix(app), storage), journal, faults)
    return EmulatorApp(traffic, stopping)
