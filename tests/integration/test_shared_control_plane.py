"""Two API nodes on one store (SQLite, PostgreSQL) share the control plane: the request journal
shows both nodes' traffic (with each node's name), a fault rule added through one node applies
on the other, and a token issued by one node is valid on the other (one key per store)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import bearer, store_url
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorControl, EmulatorServer, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EmulatorServer, EmulatorServer]]:
    """Two API nodes on one store, per engine (the tests leave no rule behind)."""
    root = tmp_path_factory.mktemp(f"shared-{request.param}")
    with store_url(request.param, root) as shared:
        first = EmulatorServer(
            root / "a", "--database-url", shared, "--node-name", "node-a", workers=0
        ).start()
        second = EmulatorServer(
            root / "b", "--database-url", shared, "--node-name", "node-b", workers=0
        ).start()
        yield first, second
        second.stop()
        first.stop()


def test_the_journal_shows_every_nodes_traffic(
    nodes: tuple[EmulatorServer, EmulatorServer],
) -> None:
    first, second = nodes
    control = EmulatorControl(first.url)
    with httpx.Client(base_url=second.url, headers=bearer(second.url)) as api:
        assert api.get("/api/v1/backends").status_code == 200

    def seen_from_the_first() -> list[dict[str, object]]:
        return [
            e
            for e in control.requests()
            if e["node"] == "node-b" and e["path"] == "/api/v1/backends"
        ]

    (entry,) = wait_until(seen_from_the_first, timeout=30)
    assert entry["status"] == 200 and entry["api"] == "runtime"
    control.close()


def test_a_fault_rule_added_on_one_node_applies_on_the_other(
    nodes: tuple[EmulatorServer, EmulatorServer],
) -> None:
    first, second = nodes
    control = EmulatorControl(first.url)
    control.add_fault(method="GET", path="*/backends", status=503, message="injected on node a")
    with httpx.Client(base_url=second.url, headers=bearer(second.url)) as api:
        refused = wait_until(
            lambda: (r := api.get("/api/v1/backends")).status_code == 503 and r, timeout=30
        )
        assert refused.json()["errors"][0]["message"] == "injected on node a"
        control.clear_faults()
        wait_until(lambda: api.get("/api/v1/backends").status_code == 200, timeout=30)
    control.close()


def test_a_token_from_one_node_is_valid_on_the_other(
    nodes: tuple[EmulatorServer, EmulatorServer],
) -> None:
    """Behind a load balancer the client's token comes from whichever node answered IAM."""
    first, second = nodes
    with httpx.Client(base_url=second.url, headers=bearer(first.url)) as api:
        assert api.get("/api/v1/backends").status_code == 200


def test_a_final_job_changed_through_one_node_is_seen_so_on_the_other(
    nodes: tuple[EmulatorServer, EmulatorServer],
) -> None:
    """Each node keeps final jobs in memory: a change through the other node reaches it (at
    once on PostgreSQL by notification, within a second on a shared SQLite file)."""
    first, second = nodes
    token = bearer(first.url)
    with (
        httpx.Client(base_url=first.url + "/api/v1", headers=token) as a,
        httpx.Client(base_url=second.url + "/api/v1", headers=token) as b,
    ):
        job_id = a.post("/jobs", json=sampler_body()).json()["id"]
        assert a.post(f"/jobs/{job_id}/cancel").status_code == 204
        assert a.get(f"/jobs/{job_id}").json()["state"]["status"] == "Cancelled"  # now cached
        assert b.put(f"/jobs/{job_id}/tags", json={"tags": ["seen-on-b"]}).status_code == 204
        wait_until(lambda: a.get(f"/jobs/{job_id}").json()["tags"] == ["seen-on-b"], timeout=30)
        assert b.delete(f"/jobs/{job_id}").status_code == 204
        wait_until(lambda: a.get(f"/jobs/{job_id}").status_code == 404, timeout=30)
