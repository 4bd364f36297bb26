"""In-process tests: the app behind Starlette's TestClient, with no server subprocess.

For envelopes, validation, tenancy, tags and listings: behaviour that needs no worker to run a
job, no process boundary and no real socket. Jobs submitted here stay Queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from emulator.app import create_app
from emulator.config import Settings

BASE_URL = "http://127.0.0.1:8000"
"""A loopback Host, as a real client on this machine sends it (the control plane refuses others)."""
CLIENT = ("127.0.0.1", 50000)
"""The peer address requests come from: loopback, as for a local client."""


def _client(app: Any, path: str = "", headers: dict[str, str] | None = None) -> TestClient:
    # follow_redirects=False: behave as the plain httpx.Client the integration tests use.
    return TestClient(
        app,
        base_url=BASE_URL + path,
        raise_server_exceptions=False,
        headers=headers,
        follow_redirects=False,
        client=CLIENT,
    )


@contextmanager
def serve(data_dir: Path, **settings: Any) -> Iterator[TestClient]:
    """An unauthenticated client on a fresh app without workers; the lifespan runs meanwhile."""
    config = Settings(data_dir=data_dir, workers=0, port=8000, **settings)
    with _client(create_app(config, start_workers=False)) as client:
        yield client


def bearer(client: TestClient, api_key: str = "test-key") -> dict[str, str]:
    """Authorization header from the app's IAM, as the client obtains it."""
    response = client.post(
        "/iam/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": api_key},
    )
    response.raise_for_status()
    return {"Authorization": "Bearer " + response.json()["access_token"]}


@contextmanager
def sibling(
    root: TestClient, path: str = "", headers: dict[str, str] | None = None
) -> Iterator[TestClient]:
    """Another client on `root`'s running app (same event loop; the lifespan is not run again),
    its requests relative to `path` (e.g. "/api/v1") and carrying `headers`."""
    assert root.portal is not None, "enter the root client (with ...) first"
    client = _client(root.app, path, headers)
    client.portal = root.portal
    client.app_state.update(root.app_state)
    try:
        yield client
    finally:
        client.close()
