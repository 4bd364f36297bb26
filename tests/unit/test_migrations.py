"""Alembic migrations: an empty store reaches head, a pre-Alembic data dir is adopted with its
jobs readable, and nodes starting at once do not trip over each other (SQLite, PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from emulator.domain.jobs import JobState, NewJob, Owner
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository
from emulator.store.migrate import current_revision, head_revision
from emulator.store.tables import metadata

OWNER = Owner("crn:migrations")
BASELINE_TABLES = ("jobs", "sessions", "job_events", "job_tags", "controls")
"""What the last release before Alembic created."""


def test_an_empty_store_reaches_head_with_the_schema_the_code_uses(database_url: str) -> None:
    engine = create_store_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_a_data_dir_from_before_alembic_is_adopted_with_its_jobs(tmp_path: Path) -> None:
    """What the last release left: tables from create_all, one column short, no version."""
    url = f"sqlite:///{tmp_path / 'emulator.db'}"
    old = sqlalchemy.create_engine(url)
    metadata.create_all(old, tables=[metadata.tables[name] for name in BASELINE_TABLES])
    with old.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN seed")  # added by a later release
        conn.exec_driver_sql(
            "INSERT INTO jobs (id, instance, program_id, backend, state, params, log_level, "
            "private, created_at, attempts, api, held, polls) VALUES ('old-job', "
            f"'{OWNER.instance}', 'sampler', 'fake_manila', 'completed', '{{}}', 'WARNING', 0, "
            "'2026-11-30 10:00:00', 1, 'runtime', 0, 0)"
        )
    old.dispose()
    engine = create_store_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        job = Repository(engine).get_job(OWNER, "old-job")
        assert job.state is JobState.COMPLETED and job.seed is None
        Repository(engine).create_job(
            NewJob(
                id="new-job",
                instance=OWNER.instance,
                program_id="sampler",
                backend="fake_manila",
                params="{}",
            )
        )
    finally:
        engine.dispose()


def test_nodes_starting_at_once_migrate_once(database_url: str) -> None:
    def start(_: int) -> str | None:
        engine = create_store_engine(database_url)
        try:
            return current_revision(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(start, range(4))) == {head_revision()}
