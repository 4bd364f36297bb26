"""Recovery by heartbeat: a second worker pool on the same store leaves a live pool's Running job
alone, and takes it over once that pool is killed (kill -9) and its heartbeat goes stale.

Two real server processes share one SQLite file (the second through `--database-url`); the job
is kept Running for a while by timed progression, so no simulation has to be slow.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from emulator.store.tables import jobs
from tests.conftest import bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorControl, EmulatorServer, wait_until

pytestmark = pytest.mark.slow

STALE_AFTER_S = 4  # --worker-stale-seconds of both pools (the default is 10)


def stored(engine: sqlalchemy.Engine, job_id: str) -> sqlalchemy.Row:
    """The job's row as the store holds it (both servers write this file)."""
    columns = (jobs.c.state, jobs.c.worker_id, jobs.c.attempts, jobs.c.running_at)
    with engine.connect() as conn:
        return conn.execute(
            sqlalchemy.select(*columns, jobs.c.heartbeat_at).where(jobs.c.id == job_id)
        ).one()


def test_a_live_pools_job_is_left_alone_and_a_dead_pools_job_is_taken_over(
    tmp_path: Path,
) -> None:
    stale = ("--worker-stale-seconds", str(STALE_AFTER_S))
    starting = time.monotonic()
    first = EmulatorServer(tmp_path / "first", *stale, workers=1).start()
    database = f"sqlite:///{tmp_path / 'first' / 'emulator.db'}"
    second: EmulatorServer | None = None
    engine = sqlalchemy.create_engine(database)
    try:
        first.wait_workers_ready()
        # The job must still be Running on the first pool after the second server has
        # started and watched it past the stale threshold: the second start takes about as
        # long as the first did on this (shared, maybe loaded) machine, so the run is sized
        # from that, with room to spare. Sizing only: nothing waits on, or asserts, a time.
        start_seconds = time.monotonic() - starting
        run_seconds = 2 * STALE_AFTER_S + 5 + 2 * start_seconds
        EmulatorControl(first.url).timed_jobs(queue_seconds=0, run_seconds=run_seconds)
        with httpx.Client(base_url=first.url + "/api/v1", headers=bearer(first.url)) as api:
            job_id = api.post("/jobs", json=sampler_body()).json()["id"]
        wait_until(lambda: stored(engine, job_id).state == "running", timeout=120)
        first_worker = stored(engine, job_id).worker_id

        second = EmulatorServer(
            tmp_path / "second", "--database-url", database, *stale, workers=1
        ).start()
        second.wait_workers_ready()
        # While the first pool beats, the job stays its own: wait until it has been Running
        # longer than the stale threshold (the second pool swept all along), then look.
        started = stored(engine, job_id).running_at
        threshold = timedelta(seconds=STALE_AFTER_S + 2)
        wait_until(lambda: stored(engine, job_id).heartbeat_at > started + threshold, 120)
        alive = stored(engine, job_id)
        assert (alive.state, alive.worker_id, alive.attempts) == ("running", first_worker, 1)

        assert first.process is not None
        first.process.kill()  # kill -9: no graceful requeue; its worker dies with it
        first.process.wait(30)
        control = EmulatorControl(second.url)
        wait_until(lambda: control.job(job_id)["state"] in ("completed", "failed"), 180)
        job = control.job(job_id)
        assert job["state"] == "completed", job["reason"]
        assert job["attempts"] == 2
        messages = [event["message"] for event in job["log"]]
        runs = [m for m in messages if m.startswith("Job running on emulator worker")]
        assert len(runs) == 2 and first_worker in runs[0] and first_worker not in runs[1]
        assert any("requeued" in m.lower() and "attempt 1 of 2" in m for m in messages)
    finally:
        engine.dispose()
        if second is not None:
            second.stop()
        first.stop()
