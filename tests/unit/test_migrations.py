"""Alembic migrations: an empty store reaches head, a pre-Alembic data dir is adopted with its
jobs readable, and nodes starting at once do not trip over each other (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from qiskit_ibm_runtime.json import RuntimeDecoder

from emulator.domain.jobs import JobFilter, JobState, NewJob, Owner
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository
from emulator.store.migrate import current_revision, head_revision
from emulator.store.tables import metadata

BEFORE_ALEMBIC = Path(__file__).parents[2] / "fixtures" / "stores" / "before-alembic.db"
OLD_OWNER = Owner(
    "crn:v1:bluemix:public:quantum-computing:us-east:a/emulator:00000000-0000-4000-8000-000000000000::"
)


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
    """The store a real earlier release left (fixtures/stores/README.md) reaches head, its jobs
    read back with their results and tags, and new jobs go in beside them."""
    shutil.copy(BEFORE_ALEMBIC, tmp_path / "emulator.db")
    engine = create_store_engine(f"sqlite:///{tmp_path / 'emulator.db'}")
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        repo = Repository(engine)
        jobs, count = repo.list_jobs(OLD_OWNER, JobFilter(descending=False))
        assert count == 2 and all(job.state is JobState.COMPLETED for job in jobs)
        first, in_session = jobs
        assert first.tags == ("made-by-previous-release",) and in_session.session_id
        _, result = repo.get_result(OLD_OWNER, first.id)
        assert result is not None
        counts = json.loads(result, cls=RuntimeDecoder)[0].data.meas.get_counts()
        assert sum(counts.values()) == 100
        repo.create_job(
            NewJob(
                id="new-job",
                instance=OLD_OWNER.instance,
                program_id="sampler",
                backend="ibm_brisbane",
                params="{}",
            )
        )
        claimed = repo.claim_next("w1")
        assert claimed is not None and claimed.id == "new-job" and claimed.claim_token == 1
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
