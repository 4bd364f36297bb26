"""A room's polling, for behaviour rather than speed: 200 concurrent clients poll job status
and list jobs while 20 jobs run. Every answer is a 2xx, every list count is exact, every job
ends, the held polls answer with the outcome, and no held poll is left behind."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorControl, EmulatorServer, wait_until

pytestmark = pytest.mark.slow

CLIENTS = 200
JOBS = 20
FINAL = {"Completed", "Failed", "Cancelled"}


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(tmp_path_factory.mktemp("load"), workers=1).start()
    yield server
    server.stop()


def test_two_hundred_pollers_and_listers_while_twenty_jobs_run(busy: EmulatorServer) -> None:
    token = bearer(busy.url)
    control = EmulatorControl(busy.url)
    control.delay_next_jobs(0.5, times=JOBS)  # each job Running a while: polls meet it there
    with httpx.Client(base_url=busy.url + "/api/v1", headers=token, timeout=60) as api:
        ids = [api.post("/jobs", json=sampler_body()).json()["id"] for _ in range(JOBS)]
    statuses: Counter[int] = Counter()
    counts: set[int] = set()
    last: dict[str, str] = {}
    clock = itertools.count()  # orders sends and receipts across the clients
    seen_final: dict[str, int] = {}  # job → when a client was first told it is final

    async def client(number: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(number)
        while not all(last.get(job_id) in FINAL for job_id in ids):
            if rng.random() < 0.2:
                response = await http.get("/jobs", params={"limit": 5})
                statuses[response.status_code] += 1
                counts.add(response.json()["count"])
            else:
                job_id = rng.choice(ids)
                sent = next(clock)
                response = await http.get(f"/jobs/{job_id}", params={"exclude_params": "true"})
                received = next(clock)
                statuses[response.status_code] += 1
                status = response.json()["state"]["status"]
                if status in FINAL:
                    seen_final.setdefault(job_id, received)
                elif job_id in seen_final and sent > seen_final[job_id]:
                    # Polls in flight together may be answered in any order, but one sent
                    # after some client was told the job is final must be told so too.
                    pytest.fail(f"{job_id} read {status} after it was read final")
                if last.get(job_id) not in FINAL:
                    last[job_id] = status
                elif status in FINAL:
                    assert status == last[job_id]  # a final state never changes

    async def room() -> None:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(
            base_url=busy.url + "/api/v1", headers=token, timeout=120, limits=limits
        ) as http:
            await asyncio.wait_for(
                asyncio.gather(*(client(n, http) for n in range(CLIENTS))), timeout=600
            )

    asyncio.run(room())
    assert set(statuses) == {200}, statuses
    assert counts == {JOBS}
    assert {last[job_id] for job_id in ids} == {"Completed"}
    wait_until(lambda: control.info()["held_polls"] == 0, timeout=30)
    control.close()
