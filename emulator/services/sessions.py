"""Session and batch operations for the Runtime API, plus the periodic settle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from emulator.domain.backends import BackendRegistry
from emulator.domain.errors import BackendNotFound, InvalidRequest
from emulator.domain.ids import new_id
from emulator.domain.sessions import SessionRequest, SessionSnapshot
from emulator.store.sessions import SessionStore

log = logging.getLogger("emulator.sessions")

MAX_TTL_LIMIT = 28800  # IBM caps max_ttl at 8 hours


class SessionService:
    """Create, read, close and cancel the sessions of an instance."""

    def __init__(
        self,
        store: SessionStore,
        backends: BackendRegistry,
        id_factory: Callable[[], str] = new_id,
    ) -> None:
        self.store = store
        self.backends = backends
        self._new_id = id_factory

    def create_session(self, instance: str, request: SessionRequest) -> SessionSnapshot:
        try:
            backend = self.backends.get(request.backend)
        except BackendNotFound:
            raise InvalidRequest("backend", f"backend {request.backend} not found") from None
        max_ttl = request.max_ttl or self.store.policy.default_max_ttl
        if max_ttl > MAX_TTL_LIMIT:
            raise InvalidRequest("max_ttl", f"must be at most {MAX_TTL_LIMIT} seconds")
        return self.store.create(self._new_id(), instance, backend.name, request.mode, max_ttl)

    def get_session(self, instance: str, session_id: str) -> SessionSnapshot:
        return self.store.get(instance, session_id)

    def set_accepting(self, instance: str, session_id: str, accepting: bool) -> SessionSnapshot:
        return self.store.set_accepting(instance, session_id, accepting)

    def cancel_session(self, instance: str, session_id: str) -> SessionSnapshot:
        return self.store.cancel(instance, session_id)

    def settle_forever(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Close due sessions (TTL, idle) even when nobody looks at them; until `stop`."""
        while not stop.wait(interval):
            try:
                self.store.settle_all()
            except Exception:  # noqa: BLE001 - e.g. the database briefly locked: next tick
                log.exception("could not settle sessions")
