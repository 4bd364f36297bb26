"""The lifecycle state machine of `test_lifecycle_stateful.py` on PostgreSQL: a file of its
own so that the two engines' runs (the suite's longest tests) go to different xdist
processes."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from emulator.store.db import create_store_engine
from tests.conftest import POSTGRES, postgres_database
from tests.unit.test_lifecycle_stateful import PG_WATCHERS, Lifecycle


def test_lifecycle_on_postgresql() -> None:
    """The same machine on PostgreSQL (one database, emptied before each example)."""
    if not POSTGRES:
        if os.environ.get("IBMQ_EMULATOR_REQUIRE_POSTGRES"):
            pytest.fail("IBMQ_EMULATOR_REQUIRE_POSTGRES is set, IBMQ_EMULATOR_TEST_POSTGRES not")
        pytest.skip("PostgreSQL case skipped: set IBMQ_EMULATOR_TEST_POSTGRES (.ci/run starts one)")
    with postgres_database() as url:
        engine = create_store_engine(url)
        with engine.begin() as conn:
            for statement in PG_WATCHERS:
                conn.exec_driver_sql(statement)
        engine.dispose()
        machine = type("LifecycleOnPostgres", (Lifecycle,), {"database_url": url})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=50,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
