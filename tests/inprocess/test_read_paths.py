"""The cheap read paths keep their contracts: backend documents encoded once and served with an
ETag (304 to a client that has them, the same bytes as the snapshot otherwise), a bearer
token checked once yet still refused once it expires, and a control-plane view of held polls
and the loop's tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from emulator.api.query import query_of
from emulator.api.runtime.schemas import JOB_LIST_QUERY
from emulator.domain.backends import BackendRegistry
from emulator.testing import wait_until
from tests.inprocess import bearer, serve, sibling
from tests.integration.test_runtime_http import submit


@pytest.mark.parametrize("document", ["configuration", "properties"])
@pytest.mark.parametrize("prefix", ["/api/v1", "/v1"])
def test_backend_documents_carry_an_etag_and_answer_304(
    runtime: TestClient, direct_access: TestClient, document: str, prefix: str
) -> None:
    client = runtime if prefix == "/api/v1" else direct_access
    first = client.get(f"/backends/fake_manila/{document}")
    assert first.status_code == 200 and first.headers["etag"].startswith('"')
    snapshot = BackendRegistry(("fake_manila",)).get("fake_manila").snapshot
    assert first.json() == json.loads(json.dumps(getattr(snapshot, document)))
    etag = first.headers["etag"]
    again = client.get(f"/backends/fake_manila/{document}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    other = client.get(f"/backends/fake_manila/{document}", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.content == first.content


def test_an_expired_token_is_refused_with_the_runtime_envelope(tmp_path: Path) -> None:
    # That a token checked once is still refused at its expiry is tests/unit/test_access.py's,
    # on a clock it moves: a 1 s lifetime cannot promise the first request a valid token.
    with serve(tmp_path, token_ttl=1) as root, sibling(root, "/api/v1", bearer(root)) as api:
        refused = wait_until(lambda: (r := api.get("/backends")).status_code == 401 and r, 30)
        assert "expired" in refused.json()["errors"][0]["message"]


def test_a_forged_token_is_refused_even_after_a_valid_one(runtime: TestClient) -> None:
    token = runtime.headers["authorization"].split()[1]
    # Another signature character (not the last: its low bits may not count).
    forged = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    assert runtime.get("/backends").status_code == 200
    response = runtime.get("/backends", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_info_counts_held_polls_and_tasks(app_client: TestClient) -> None:
    info = app_client.get("/_emulator/info").json()
    assert info["held_polls"] == 0 and info["tasks"] >= 1


def test_a_remembered_query_parse_is_the_callers_own_and_a_refused_one_stays_refused(
    runtime: TestClient,
) -> None:
    """Parses of short query strings are remembered (`query_of`): a caller changing its values
    cannot change another's, and a query that is refused is refused every time."""
    scope = {"type": "http", "query_string": b"limit=3&sort=ASC"}
    first = query_of(Request(scope), JOB_LIST_QUERY)
    first["limit"] = 999
    assert query_of(Request(scope), JOB_LIST_QUERY)["limit"] == 3
    for _ in range(2):
        refused = runtime.get("/jobs", params={"limit": "3", "sort": "sideways"})
        assert refused.status_code == 400 and "sort" in refused.text


def test_a_list_page_of_final_jobs_from_memory_is_the_same_as_from_the_store(
    tmp_path: Path,
) -> None:
    """Final jobs of a page come from the snapshot cache with their views encoded once: the
    page is still JSONResponse's exact format, each entry is the job's own status view (less
    the usage seconds lists no longer carry), and a tag change shows at once."""
    with serve(tmp_path) as root, sibling(root, "/api/v1", bearer(root)) as api:
        ids = [submit(api) for _ in range(4)]
        for job_id in ids[:3]:
            assert api.post(f"/jobs/{job_id}/cancel").status_code == 204  # final, not Queued
        for _ in range(2):  # the store's rows, then memory
            page = api.get("/jobs", params={"limit": 10, "exclude_params": "true"})
            assert page.status_code == 200
            assert page.content == JSONResponse(page.json()).body
            assert page.json()["count"] == 4
            for entry in page.json()["jobs"]:
                alone = api.get(f"/jobs/{entry['id']}", params={"exclude_params": "true"})
                # The job's own view, but for the usage seconds lists dropped in 2026-03-15
                # (a job's own view keeps them: qrmi 0.23 requires `usage.seconds`).
                own = alone.json()
                own["usage"] = {
                    k: v for k, v in own["usage"].items() if k not in ("seconds", "quantum_seconds")
                }
                assert entry == own
        # The total rides on the page's rows; past the end it is read on its own.
        for offset, size in ((1, 2), (10, 0)):
            query = {"limit": 2, "offset": offset, "exclude_params": "true"}
            part = api.get("/jobs", params=query).json()
            assert (len(part["jobs"]), part["count"]) == (size, 4)
        assert api.put(f"/jobs/{ids[0]}/tags", json={"tags": ["moved"]}).status_code == 204
        page = api.get("/jobs", params={"limit": 10, "exclude_params": "true"}).json()
        assert {j["id"]: j["tags"] for j in page["jobs"]}[ids[0]] == ["moved"]
