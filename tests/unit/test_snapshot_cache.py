"""Final jobs' snapshots in memory (store.cache): only final jobs, never a stale one after a
change this process made or heard of, never one read before a change that raced it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.domain.errors import JobNotFound
from emulator.domain.jobs import JobState, NewJob, Owner
from emulator.store import cache as cache_module
from emulator.store.cache import ALL, Coherence, SnapshotCache
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository

A = Owner("crn:cache-a")
B = Owner("crn:cache-b")


@pytest.fixture()
def repo(database_url: str) -> Iterator[Repository]:
    engine = create_store_engine(database_url)
    yield Repository(engine, cache=SnapshotCache(Coherence.ALONE))
    engine.dispose()


def finished(repo: Repository, job_id: str, owner: Owner = A) -> None:
    repo.create_job(
        NewJob(id=job_id, instance=owner.instance, program_id="sampler", backend="b", params="{}")
    )
    claimed = repo.claim_next("w1")
    assert claimed is not None and claimed.lease is not None
    assert repo.complete_job(job_id, claimed.lease, "{}", [], 0.1) is not None


def test_only_final_jobs_are_kept_and_they_are_read_from_memory(repo: Repository) -> None:
    finished(repo, "done")
    repo.create_job(NewJob(id="q", instance=A.instance, program_id="s", backend="b", params="{}"))
    assert repo.get_job(A, "q").state is JobState.QUEUED
    assert repo.cached_job(A, "q") is None  # a pending job can change at any moment
    assert repo.cached_job(A, "done") is None  # not read yet
    first = repo.get_job(A, "done")
    assert repo.cached_job(A, "done") == first and first.state is JobState.COMPLETED
    assert repo.cached_job(B, "done") is None  # tenancy: another owner never sees it
    with pytest.raises(JobNotFound):
        repo.get_job(B, "done")
    assert repo.get_job(A, "done", with_params=True).params == "{}"  # params: from the store


def test_tags_delete_and_reset_are_seen_at_once(repo: Repository) -> None:
    finished(repo, "j1")
    finished(repo, "j2")
    repo.get_job(A, "j1")
    repo.get_job(A, "j2")
    repo.replace_tags(A, "j1", ["new"])
    assert repo.get_job(A, "j1").tags == ("new",)
    repo.delete_job(A, "j1")
    with pytest.raises(JobNotFound):
        repo.get_job(A, "j1")
    assert repo.cached_job(A, "j2") is not None
    repo.reset()
    assert repo.cached_job(A, "j2") is None
    with pytest.raises(JobNotFound):
        repo.get_job(A, "j2")


def snapshot_of(repo: Repository, job_id: str) -> object:
    with repo.engine.connect() as conn:
        return repo._load(conn, job_id, None)


def test_a_read_that_raced_a_change_is_not_kept(repo: Repository) -> None:
    """The read started before the change and finished after its invalidation: keeping it
    would serve the old job until the next change."""
    finished(repo, "j1")
    cache = repo.cache
    before = cache.generation("j1")
    old = snapshot_of(repo, "j1")
    cache.drop("j1")  # the change, heard while the read was in flight
    cache.put(old, before)  # type: ignore[arg-type]
    assert cache.get("j1") is None
    before_all = cache.generation("j1")
    cache.drop(ALL)
    cache.put(old, before_all)  # type: ignore[arg-type]
    assert cache.get("j1") is None
    cache.put(old, cache.generation("j1"))  # type: ignore[arg-type]
    assert cache.get("j1") == old


def test_coherence_decides_how_long_an_entry_is_trusted(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished(repo, "j1")
    snapshot = snapshot_of(repo, "j1")
    cache = SnapshotCache(Coherence.OFF)
    cache.put(snapshot, cache.generation("j1"))  # type: ignore[arg-type]
    assert cache.get("j1") is None  # a PostgreSQL node whose channel is down keeps nothing
    cache.set_coherence(Coherence.BRIEF)
    now = [1000.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    cache.put(snapshot, cache.generation("j1"))  # type: ignore[arg-type]
    assert cache.get("j1") == snapshot
    now[0] += cache_module.BRIEF_TTL_S + 0.01  # a shared SQLite file: trusted briefly
    assert cache.get("j1") is None
    cache.set_coherence(Coherence.LISTENING)
    cache.put(snapshot, cache.generation("j1"))  # type: ignore[arg-type]
    cache.set_coherence(Coherence.OFF)  # the channel broke: what it may have missed is gone
    cache.set_coherence(Coherence.LISTENING)
    assert cache.get("j1") is None


def test_the_cache_is_bounded() -> None:
    cache = SnapshotCache(Coherence.ALONE, capacity=3)
    from datetime import datetime

    from emulator.domain.jobs import JobSnapshot

    for i in range(5):
        job = JobSnapshot(
            id=f"j{i}",
            instance="i",
            program_id="s",
            backend="b",
            state=JobState.COMPLETED,
            created_at=datetime(2026, 12, 1),
        )
        cache.put(job, cache.generation(job.id))
    assert len(cache) == 3 and cache.get("j0") is None and cache.get("j4") is not None
