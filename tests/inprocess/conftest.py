"""In-process fixtures: one app per scope behind TestClient, with clients for each API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.conftest import INSTANCES
from tests.inprocess import bearer, serve, sibling


@pytest.fixture(scope="session")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Unauthenticated client on the shared in-process app (default instance, no workers)."""
    with serve(tmp_path_factory.mktemp("inprocess")) as client:
        yield client


@pytest.fixture(scope="session")
def runtime(app_client: TestClient) -> Iterator[TestClient]:
    """Runtime API client (paths relative to /api/v1), authenticated, default instance."""
    with sibling(app_client, "/api/v1", bearer(app_client)) as client:
        yield client


@pytest.fixture(scope="session")
def direct_access(app_client: TestClient) -> Iterator[TestClient]:
    """Direct Access client (paths relative to /v1), authenticated, default instance."""
    with sibling(app_client, "/v1", bearer(app_client)) as client:
        yield client


@pytest.fixture(scope="session")
def tenant_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Unauthenticated client on an app with two instances (CRN_A, the default, and CRN_B)."""
    with serve(tmp_path_factory.mktemp("tenants"), instances=tuple(INSTANCES.split(","))) as c:
        yield c


@pytest.fixture(scope="session")
def tenant_runtime(tenant_client: TestClient) -> Iterator[TestClient]:
    """Runtime API client (paths relative to /api/v1) on the two-instance app, as CRN_A."""
    with sibling(tenant_client, "/api/v1", bearer(tenant_client)) as client:
        yield client
