"""`GET /workloads` in the store: an instance's standalone jobs and sessions as one list,
filtered and cursor-paged both ways, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.domain.sessions import SessionMode, SessionPolicy
from emulator.domain.workloads import Cursor, WorkloadFilter
from emulator.store.db import create_store_engine
from emulator.store.jobs import Repository
from emulator.store.sessions import SessionStore
from emulator.store.workloads import list_workloads
from tests.unit.test_store import A, B, new


@pytest.fixture()
def repo(database_url: str) -> Iterator[Repository]:
    engine = create_store_engine(database_url)
    yield Repository(engine)
    engine.dispose()


@pytest.fixture()
def filled(repo: Repository) -> Repository:
    """j1, j2 (tagged), a session s1 with j3 inside, j4 on a mock, and B's own job."""
    new(repo, "j1")
    new(repo, "j2", tags=("alpha", "beta"))
    SessionStore(repo, SessionPolicy()).create(
        "s1", A.instance, "ibm_brisbane", SessionMode.BATCH, 600
    )
    new(repo, "j3", session_id="s1")
    new(repo, "j4", backend="mock_fez")
    new(repo, "x1", owner=B)
    return repo


def ids(repo: Repository, **kw: object) -> list[str]:
    page = list_workloads(repo.engine, A, WorkloadFilter(**kw))  # type: ignore[arg-type]
    return [w.id for w in page.workloads]


def test_standalone_jobs_and_sessions_in_creation_order(filled: Repository) -> None:
    page = list_workloads(filled.engine, A, WorkloadFilter())
    assert [w.id for w in page.workloads] == ["j1", "j2", "s1", "j4"]  # j3 is s1's
    assert page.total == 4 and not page.has_next and not page.has_previous
    by_id = {w.id: w for w in page.workloads}
    assert by_id["s1"].mode == "batch" and by_id["s1"].status == "in_progress"
    assert by_id["s1"].accepting_jobs is True and by_id["j1"].accepting_jobs is None
    assert by_id["j1"].mode == "job" and by_id["j1"].status == "pending"
    assert by_id["j2"].tags == ("alpha", "beta")
    assert ids(filled, descending=True) == ["j4", "s1", "j2", "j1"]


def test_filters(filled: Repository) -> None:
    assert ids(filled, mode="batch") == ["s1"]
    assert ids(filled, tags=("alpha",)) == ["j2"]
    assert ids(filled, tags=("alpha", "gamma")) == []
    assert ids(filled, search="ET") == ["j2"]  # a tag, case-insensitively
    assert ids(filled, search="s1") == ["s1"]
    assert ids(filled, statuses=("in_progress",)) == ["s1"]
    assert ids(filled, statuses=("pending", "completed")) == ["j1", "j2", "j4"]
    assert ids(filled, hidden_backends=("mock_fez",)) == ["j1", "j2", "s1"]
    assert ids(filled, backend="mock_fez") == ["j4"]


def test_cursors_page_forwards_and_back(filled: Repository) -> None:
    first = list_workloads(filled.engine, A, WorkloadFilter(limit=2))
    assert [w.id for w in first.workloads] == ["j1", "j2"] and first.has_next
    last = first.workloads[-1]
    second = list_workloads(
        filled.engine, A, WorkloadFilter(limit=2, after=Cursor(last.created, last.id))
    )
    assert [w.id for w in second.workloads] == ["s1", "j4"]
    assert second.has_previous and not second.has_next and second.total == 4
    head = second.workloads[0]
    back = list_workloads(
        filled.engine, A, WorkloadFilter(limit=2, before=Cursor(head.created, head.id))
    )
    assert [w.id for w in back.workloads] == ["j1", "j2"] and back.has_next
    assert not back.has_previous
    token = Cursor(last.created, last.id).encode()
    assert Cursor.decode(token) == Cursor(last.created, last.id)
    with pytest.raises(ValueError):
        Cursor.decode("not-a-cursor")
