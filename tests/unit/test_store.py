"""The repository on a real SQLite file: guarded transitions, atomic claims, exact counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy

from emulator.domain.admission import InstanceLimits, UsageLimits, usage_period
from emulator.domain.errors import (
    JobNotCancellable,
    JobNotFound,
    JobNotTerminal,
    PendingJobsLimit,
    UsageLimitReached,
)
from emulator.domain.jobs import Api, JobFilter, JobState, Lease, NewJob, Owner, utcnow
from emulator.domain.sessions import SessionMode, SessionPolicy
from emulator.services.jobs import store_runtime_job
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository
from emulator.store.sessions import SessionStore

A = Owner("crn:a")
B = Owner("crn:b")


@pytest.fixture()
def repo(database_url: str) -> Iterator[Repository]:
    """The store on each supported engine (SQLite, and PostgreSQL where one is configured)."""
    repository = Repository(create_store_engine(database_url))
    yield repository
    repository.engine.dispose()


def new(repo: Repository, job_id: str, owner: Owner = A, **kw: object) -> None:
    repo.create_job(
        NewJob(
            id=job_id,
            instance=owner.instance,
            api=owner.api,
            program_id=str(kw.pop("program", "sampler")),
            backend=str(kw.pop("backend", "ibm_brisbane")),
            params="{}",
            **kw,
        )  # type: ignore[arg-type]
    )


def test_jobs_are_isolated_per_instance(repo: Repository) -> None:
    new(repo, "j1", A)
    assert repo.get_job(A, "j1").state is JobState.QUEUED
    with pytest.raises(JobNotFound):
        repo.get_job(B, "j1")
    with pytest.raises(JobNotFound):
        repo.cancel_job(B, "j1")
    with pytest.raises(JobNotFound):
        repo.delete_job(B, "j1")


def test_cancel_only_from_pending_states(repo: Repository) -> None:
    new(repo, "j1")
    assert repo.cancel_job(A, "j1").state is JobState.CANCELLED
    with pytest.raises(JobNotCancellable):
        repo.cancel_job(A, "j1")


def test_delete_only_terminal_jobs(repo: Repository) -> None:
    new(repo, "j1")
    with pytest.raises(JobNotTerminal):
        repo.delete_job(A, "j1")
    repo.cancel_job(A, "j1")
    repo.delete_job(A, "j1")
    with pytest.raises(JobNotFound):
        repo.get_job(A, "j1")
    with pytest.raises(JobNotFound):
        repo.delete_job(A, "j1")


def test_worker_cannot_overwrite_a_cancelled_job(repo: Repository) -> None:
    new(repo, "j1")
    claimed = repo.claim_next("w1")
    assert claimed is not None and claimed.state is JobState.RUNNING and claimed.params == "{}"
    repo.cancel_job(A, "j1")
    assert repo.complete_job("j1", Lease("w1", 1), "result", ["line"], 0.1) is None
    job, result = repo.get_result(A, "j1")
    assert job.state is JobState.CANCELLED and result is None


def test_only_the_owning_worker_completes(repo: Repository) -> None:
    new(repo, "j1")
    claimed = repo.claim_next("w1")
    assert claimed is not None and claimed.lease == Lease("w1", 1)
    assert repo.complete_job("j1", Lease("w2", 1), "r", [], 0.1) is None
    done = repo.complete_job("j1", Lease("w1", 1), "r", ["simulated 2 qubits"], 0.25)
    assert done is not None and done.state is JobState.COMPLETED and done.quantum_seconds == 0.25
    _, events = repo.get_events(A, "j1")
    assert any("simulated 2 qubits" in e.message for e in events)


def test_a_worker_that_lost_its_run_cannot_write_into_the_next_one(repo: Repository) -> None:
    """The fencing token: the same worker claims the job again after the sweep took it back
    (and a graceful requeue gave the attempt back); the first run's writes are refused."""
    new(repo, "j1")
    first = repo.claim_next("w1")
    assert first is not None and first.lease is not None
    assert repo.requeue("j1", "stopping", held_by=first.lease, count_attempt=False)
    second = repo.claim_next("w1")
    assert second is not None and second.lease is not None
    assert second.attempts == first.attempts == 1  # the attempt alone could not tell them apart
    assert second.lease != first.lease
    assert not repo.heartbeat(first.lease, "j1")
    assert not repo.set_params("j1", first.lease, "stale input")
    assert repo.complete_job("j1", first.lease, "stale", [], 0.1) is None
    assert repo.transition("j1", JobState.FAILED, held_by=first.lease) is None
    assert repo.requeue("j1", "stale", held_by=first.lease, count_attempt=True) is None
    assert repo.heartbeat(second.lease, "j1")
    done = repo.complete_job("j1", second.lease, "fresh", [], 0.1)
    assert done is not None and done.state is JobState.COMPLETED
    assert repo.get_result(A, "j1")[1] == "fresh"


def test_concurrent_claims_never_share_a_job(repo: Repository) -> None:
    for i in range(30):
        new(repo, f"j{i:02d}")
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := repo.claim_next(name)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == [f"j{i:02d}" for i in range(30)]


def test_claims_oldest_first(repo: Repository) -> None:
    for i in range(3):
        new(repo, f"j{i}")
    assert [repo.claim_next("w").id for _ in range(3)] == ["j0", "j1", "j2"]  # type: ignore[union-attr]
    assert repo.claim_next("w") is None


def test_list_count_is_exact_and_offset_honoured(repo: Repository) -> None:
    for i in range(25):
        new(repo, f"j{i:02d}", program="estimator" if i % 5 == 0 else "sampler")
    new(repo, "other", B)
    page, count = repo.list_jobs(A, JobFilter(limit=10, offset=20))
    assert count == 25 and len(page) == 5
    page, count = repo.list_jobs(A, JobFilter(limit=3, program_id="estimator", descending=False))
    assert count == 5 and [j.id for j in page] == ["j00", "j05", "j10"]
    assert repo.list_jobs(A, JobFilter(pending=False))[1] == 0
    repo.cancel_job(A, "j03")
    assert [j.id for j in repo.list_jobs(A, JobFilter(pending=False))[0]] == ["j03"]
    assert repo.list_jobs(A, JobFilter(pending=True))[1] == 24


def test_tag_filter_requires_every_tag(repo: Repository) -> None:
    new(repo, "j1", tags=("x", "y"))
    new(repo, "j2", tags=("x",))
    assert [j.id for j in repo.list_jobs(A, JobFilter(tags=("x", "y")))[0]] == ["j1"]
    assert repo.list_jobs(A, JobFilter(tags=("x",)))[1] == 2
    repo.replace_tags(A, "j2", ["y", "x", "x"])
    assert repo.get_job(A, "j2").tags == ("x", "y")
    assert repo.search_tags(A, "X") == ["x"]
    assert repo.search_tags(B, "x") == []


def test_interrupted_jobs_are_requeued_then_failed(repo: Repository) -> None:
    new(repo, "j1")
    repo.claim_next("w1")
    recovered = repo.recover_interrupted(max_attempts=2, stale_after=timedelta(0))
    assert [j.state for j in recovered] == [JobState.QUEUED]
    repo.claim_next("w2")
    recovered = repo.recover_interrupted(max_attempts=2, stale_after=timedelta(0))
    assert [j.state for j in recovered] == [JobState.FAILED]
    job = repo.get_job(A, "j1")
    assert job.reason and "stopped" in job.reason and job.reason_code == 1517


def test_an_outcome_writes_the_programs_lines_before_its_own(repo: Repository) -> None:
    from emulator.domain.outcomes import End, outcome

    new(repo, "j1")
    running = repo.claim_next("w1")
    assert running is not None
    failed = outcome(
        End.PROGRAM_FAILED,
        1002,
        lines=["method: x", "noise: y"],
        reason="no",
        solution="s",
        detail="",
    )
    assert repo.transition("j1", failed, held_by=running.lease) is not None
    _, events = repo.get_events(A, "j1")
    messages = [e.message for e in events]
    assert messages[-3:-1] == ["method: x", "noise: y"]
    assert messages[-1].startswith("Job failed: no")


def test_a_private_result_is_taken_once_by_one_of_two_readers(repo: Repository) -> None:
    from emulator.domain.errors import ResultsAlreadyRead

    new(repo, "p1", private=True)
    assert repo.take_result(A, "p1")[1] is None  # queued: nothing yet, nothing taken
    running = repo.claim_next("w1")
    assert running is not None
    repo.complete_job("p1", running.lease, "the result", [], 0.1)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: _take(repo), range(2)))
    assert sorted(outcomes, key=str) == ["gone", "the result"]
    with pytest.raises(ResultsAlreadyRead):
        repo.take_result(A, "p1")
    job, stored = repo.get_result(A, "p1")
    assert job.state is JobState.COMPLETED and stored is None


def _take(repo: Repository) -> str:
    from emulator.domain.errors import ResultsAlreadyRead

    try:
        return str(repo.take_result(A, "p1")[1])
    except ResultsAlreadyRead:
        return "gone"


def test_a_graceful_requeue_gives_the_attempt_back(repo: Repository) -> None:
    new(repo, "j1")
    assert repo.claim_next("w1") is not None
    assert repo.requeue("j1", "stopping", held_by=Lease("w2", 1), count_attempt=False) is None
    back = repo.requeue("j1", "stopping", held_by=Lease("w1", 1), count_attempt=False)
    assert back is not None and back.state is JobState.QUEUED and back.attempts == 0
    assert back.worker_id is None and back.running_at is None
    again = repo.claim_next("w2")
    assert again is not None and again.attempts == 1
    crashed = repo.requeue("j1", "crashed", held_by=Lease("w2", 2), count_attempt=True)
    assert crashed is not None and crashed.attempts == 1


def test_recovery_does_not_charge_a_graceful_stop(repo: Repository) -> None:
    """Stopped gracefully once, then killed: one attempt spent, so it is requeued, not failed."""
    new(repo, "j1")
    repo.claim_next("w1")
    repo.requeue("j1", "stopping", held_by=Lease("w1", 1), count_attempt=False)
    repo.claim_next("w2")
    (recovered,) = repo.recover_interrupted(max_attempts=2, stale_after=timedelta(0))
    assert recovered.state is JobState.QUEUED and recovered.attempts == 1


def test_schema_rejects_impossible_states(repo: Repository) -> None:
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from emulator.store.tables import jobs

    new(repo, "j1")
    with pytest.raises(IntegrityError), repo.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == "j1").values(state="initializing"))


def test_apis_never_see_each_others_jobs(repo: Repository) -> None:
    direct = Owner(A.instance, Api.DIRECT_ACCESS)
    new(repo, "runtime-job", A)
    new(repo, "da-job", direct)
    assert [j.id for j in repo.list_jobs(A, JobFilter())[0]] == ["runtime-job"]
    assert [j.id for j in repo.list_jobs(direct, JobFilter())[0]] == ["da-job"]
    with pytest.raises(JobNotFound):
        repo.get_job(A, "da-job")
    with pytest.raises(JobNotFound):
        repo.cancel_job(direct, "runtime-job")
    assert repo.get_job(direct, "da-job").api is Api.DIRECT_ACCESS


def run_one(repo: Repository, seconds: float) -> str:
    """Claim the next job and complete it as if the simulation took `seconds`."""
    job = repo.claim_next("w1")
    assert job is not None
    assert job.lease is not None
    repo.complete_job(job.id, job.lease, "result", [], seconds)
    return job.id


def test_usage_ledger_counts_execution_seconds_of_the_period(repo: Repository) -> None:
    new(repo, "j1")
    new(repo, "j2", B)
    run_one(repo, 1.5)
    run_one(repo, 4.0)
    start, end = usage_period(utcnow())
    assert start <= utcnow() < end and start.day == 1 and end.day == 1
    assert repo.usage.seconds(A.instance, since=start) == pytest.approx(1.5)
    # Jobs that ended before the period began are last period's usage.
    assert repo.usage.seconds(A.instance, since=utcnow() + timedelta(seconds=1)) == 0.0
    limits = {A.instance: 1.5, B.instance: 10.0, "crn:idle": 0.0}
    assert repo.usage.exhausted(limits, start) == {A.instance, "crn:idle"}


def test_refuse_mode_refuses_submissions_once_the_limit_is_reached(repo: Repository) -> None:
    limits = InstanceLimits(usage=UsageLimits({A.instance: 1.0}))

    def submit(job_id: str) -> None:
        store_runtime_job(
            repo,
            NewJob(
                id=job_id,
                instance=A.instance,
                api=A.api,
                program_id="sampler",
                backend="ibm_brisbane",
                params="{}",
            ),
            limits,
        )

    submit("j1")
    submit("j2")  # still under the limit: usage counts only finished jobs
    run_one(repo, 0.6)
    submit("j3")
    run_one(repo, 0.6)
    with pytest.raises(UsageLimitReached, match="1.200 of 1 seconds"):
        submit("j4")
    with pytest.raises(JobNotFound):
        repo.get_job(A, "j4")
    assert repo.get_job(A, "j3").state is JobState.QUEUED  # accepted jobs still run
    new(repo, "b1", B)  # other instances are not limited


def test_held_instances_stay_queued_while_others_run(repo: Repository) -> None:
    new(repo, "a1", A)
    new(repo, "b1", B)
    claimed = repo.claim_next("w1", held_instances={A.instance})
    assert claimed is not None and claimed.id == "b1"
    assert repo.claim_next("w2", held_instances={A.instance}) is None
    assert repo.get_job(A, "a1").state is JobState.QUEUED
    again = repo.claim_next("w2")
    assert again is not None and again.id == "a1"


def test_a_job_interrupted_after_its_session_closed_is_not_requeued(repo: Repository) -> None:
    # Found by the stateful test: requeueing it left a Queued job in a closed session.
    store = SessionStore(repo, SessionPolicy(default_max_ttl=600, interactive_ttl=60))
    store.create("s1", A.instance, "ibm_brisbane", SessionMode.DEDICATED, 600)
    new(repo, "j1", session_id="s1")
    new(repo, "j2", session_id="s1")
    assert repo.claim_next("w1") is not None
    store.cancel(A.instance, "s1")  # j2 is cancelled; j1 runs on, as IBM lets it
    assert repo.get_job(A, "j1").state is JobState.RUNNING
    (recovered,) = repo.recover_interrupted(max_attempts=2, stale_after=timedelta(0))
    assert recovered.id == "j1" and recovered.state is JobState.FAILED
    assert recovered.reason_code == 1217 and "session" in (recovered.reason or "")


def test_an_older_data_dir_gains_the_new_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_store_engine(url)
    with engine.begin() as conn:
        # A data dir from before Alembic: no version table, no table of a later migration,
        # and columns added since missing.
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql("DROP TABLE request_journal")
        conn.exec_driver_sql("DROP TABLE node_secrets")
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN claim_token")
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN seed")
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN held")
    engine.dispose()
    repo = Repository(create_store_engine(url))
    new(repo, "j1")
    job = repo.get_job(A, "j1")
    assert job.held is False and job.seed is None


def test_listing_with_params_costs_the_same_queries_for_any_number_of_jobs(
    repo: Repository,
) -> None:
    """GET /jobs with params: one query for the page (params included), not one per job."""
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(repo.engine, "before_cursor_execute", count)
    try:
        costs = []
        for batch, size in enumerate((2, 38)):  # 2 jobs, then 40
            for i in range(size):
                new(repo, f"list-{batch}-{i}")
            statements.clear()
            page, _ = repo.list_jobs(A, JobFilter(limit=200), with_params=True)
            assert all(job.params == "{}" for job in page)
            costs.append(len(statements))
    finally:
        sqlalchemy.event.remove(repo.engine, "before_cursor_execute", count)
    assert costs[0] == costs[1], costs


def test_concurrent_submissions_cannot_pass_the_pending_limit_together(repo: Repository) -> None:
    """Eight threads submit at once against a limit of three (on PostgreSQL too, where only
    the per-instance advisory lock serialises the read-then-insert)."""
    limits = InstanceLimits(max_pending=3)
    barrier = threading.Barrier(8)

    def submit(index: int) -> bool:
        barrier.wait()
        try:
            store_runtime_job(
                repo,
                NewJob(
                    id=f"race-{index}",
                    instance=A.instance,
                    program_id="sampler",
                    backend="ibm_brisbane",
                    params="{}",
                ),
                limits,
            )
            return True
        except PendingJobsLimit:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = sum(pool.map(submit, range(8)))
    assert accepted == 3
    assert repo.list_jobs(A, JobFilter())[1] == 3
