"""Shared fixtures: emulator processes, and clients configured by `python -m emulator env` only."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from tests.support import EmulatorServer, applied_env, emulator_env

CLIENT_VARIABLES = (
    "QISKIT_IBM_TOKEN",
    "QISKIT_IBM_URL",
    "QISKIT_IBM_INSTANCE",
    "QISKIT_IBM_CHANNEL",
    "IAM_URL",
    "GLOBAL_SEARCH_URL",
    "GLOBAL_CATALOG_URL",
)
CRN_A = (
    "crn:v1:bluemix:public:quantum-computing:us-east:a/test:aaaaaaaa-0000-4000-8000-000000000001::"
)
CRN_B = (
    "crn:v1:bluemix:public:quantum-computing:eu-de:a/test:bbbbbbbb-0000-4000-8000-000000000002::"
)
INSTANCES = f"team-a={CRN_A},team-b={CRN_B}"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """The shared emulator: 2 workers, two instances (the first is the default)."""
    instance = EmulatorServer(
        tmp_path_factory.mktemp("emulator"), "--instances", INSTANCES, workers=2
    ).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """An emulator with no workers: every job stays Queued."""
    instance = EmulatorServer(tmp_path_factory.mktemp("idle"), workers=0).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def client_env(
    server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Apply `python -m emulator env` to this process, with an empty HOME (no saved accounts)."""
    values = emulator_env(server.url)
    assert set(values) >= set(CLIENT_VARIABLES)
    with applied_env({**values, "HOME": str(tmp_path_factory.mktemp("home"))}):
        yield values


def bearer(url: str, api_key: str = "test-key") -> dict[str, str]:
    """Authorization header from the emulator's IAM, as the client obtains it."""
    response = httpx.post(
        url + "/iam/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": api_key},
    )
    response.raise_for_status()
    return {"Authorization": "Bearer " + response.json()["access_token"]}


@pytest.fixture(scope="session")
def api(server: EmulatorServer) -> Iterator[httpx.Client]:
    """An HTTP client on the shared server's Runtime API, authenticated, default instance."""
    with httpx.Client(base_url=server.url + "/api/v1", headers=bearer(server.url), timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def idle_api(idle_server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=idle_server.url + "/api/v1", headers=bearer(idle_server.url), timeout=60
    ) as c:
        yield c


POSTGRES = os.environ.get("IBMQ_EMULATOR_TEST_POSTGRES", "")
"""A PostgreSQL server URL (SQLAlchemy, psycopg) the store tests may create databases on;
`.ci/run` starts one and sets it. Without it the PostgreSQL cases skip, loudly."""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL on each engine the emulator supports."""
    with store_url(request.param, tmp_path) as url:
        yield url


@contextlib.contextmanager
def store_url(engine: str, directory: Path) -> Iterator[str]:
    """A fresh, empty store URL on `engine` ("sqlite": a file in `directory`; "postgresql": a
    new database, dropped afterwards; skipped loudly without a server, failed in CI)."""
    if engine == "sqlite":
        yield f"sqlite:///{directory / 'store.db'}"
        return
    if not POSTGRES:
        if os.environ.get("IBMQ_EMULATOR_REQUIRE_POSTGRES"):
            pytest.fail("IBMQ_EMULATOR_REQUIRE_POSTGRES is set, IBMQ_EMULATOR_TEST_POSTGRES not")
        pytest.skip("PostgreSQL case skipped: set IBMQ_EMULATOR_TEST_POSTGRES (.ci/run starts one)")
    with postgres_database() as url:
        yield url


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the configured PostgreSQL server, dropped afterwards."""
    name = f"emulator_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sqlalchemy.make_url(POSTGRES).set(database=name).render_as_string(
            hide_password=False
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
