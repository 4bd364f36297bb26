"""Job changes across processes: PostgreSQL LISTEN/NOTIFY delivers committed changes (and only
those) to a listener on another engine; SQLite has no channel (the waiters' polling fallback)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from emulator.domain.jobs import JobState, NewJob, Owner
from emulator.domain.outcomes import End, outcome
from emulator.execution.supervisor import WorkerPool
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository
from emulator.store.signals import ChangeListener
from emulator.store.transitions import transition
from emulator.testing import wait_until

OWNER = Owner("crn:signals")


def job(job_id: str) -> NewJob:
    return NewJob(
        id=job_id, instance=OWNER.instance, program_id="sampler", backend="fake", params="{}"
    )


@pytest.fixture()
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_store_engine(database_url)
    yield engine
    engine.dispose()


def test_sqlite_has_no_channel(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert ChangeListener.for_engine(engine, lambda *_: None) is None
    finally:
        engine.dispose()


def test_another_process_hears_each_committed_change_and_nothing_rolled_back(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the change channel is PostgreSQL's; SQLite waiters poll")
    heard: queue.Queue[tuple[str, str]] = queue.Queue()
    flowing: list[bool] = []
    listener = ChangeListener.for_engine(
        engine, lambda job_id, state: heard.put((job_id, state)), flowing.append
    )
    assert listener is not None
    listener.start()
    # The writer is another engine (another process's connections, as far as PG knows).
    writer = create_store_engine(engine.url.render_as_string(hide_password=False))
    try:
        wait_until(listener.listening.is_set, 30)
        repo = Repository(writer)
        repo.create_job(job("j1"))
        assert heard.get(timeout=30) == ("j1", "queued")
        claimed = repo.claim_next("w1")
        assert claimed is not None
        assert heard.get(timeout=30) == ("j1", "running")
        with pytest.raises(RuntimeError), repo.tx.begin() as conn:
            assert transition(conn, "j1", outcome(End.CANCELLED_BY_CLIENT))
            raise RuntimeError("rolled back: nobody may hear of it")
        repo.cancel_job(OWNER, "j1")
        # The next thing heard is the committed cancel, not the rolled-back one before it.
        assert heard.get(timeout=30) == ("j1", "cancelled")
        assert repo.get_job(OWNER, "j1").state is JobState.CANCELLED
    finally:
        listener.stop()
        writer.dispose()
    assert flowing == [True, False]
    assert heard.empty()


def test_a_worker_node_wakes_on_a_queued_job_and_rechecks_the_job_it_runs(
    engine: Engine,
) -> None:
    """What the pool does with a heard change: a queued job is one wakeup; a change of the job a
    slot runs makes that slot check its lease now (it is not started, so no child runs)."""
    from emulator.domain.backends import BackendRegistry

    pool = WorkerPool(Repository(engine), BackendRegistry(("fake_manila",)), 1)
    pool.job_changed("j1", "queued")
    assert pool._pending_wakeups == 1
    pool.job_changed("j1", "running")
    assert pool._pending_wakeups == 1
    slot = pool.slots[0]
    slot._current = "j2"
    pool.job_changed("j2", "cancelled")
    assert slot._take_recheck() and not slot._take_recheck()
    pool.job_changed("j3", "cancelled")
    assert not slot._take_recheck()
