"""A Hypothesis fuzzer that mutates the real request captures and sends them to a real server.

Targets: `POST /api/v1/jobs` (Sampler, Estimator, executor captures), `POST /v1/jobs`, tags,
sessions and list filters. One mutation per request: a value somewhere in the body replaced by
something hostile (NaN, huge or out-of-range numbers, lone surrogates, deep nesting, wrong
types), a key removed, or one added. Asserts: never a 5xx, every 4xx in the API's envelope,
and afterwards the server is healthy, every accepted job ends and every stored job reads.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import bearer
from tests.support import EmulatorServer, wait_until

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CAPTURES = {
    name: json.loads((FIXTURES / f"post_jobs_{name}_body.json").read_text())
    for name in ("sampler", "sampler_options", "estimator", "executor_sampler")
}
DIRECT_ACCESS = {
    "id": "fuzz",
    "backend": "fake_manila",
    "program_id": "sampler",
    "timeout_secs": 30,
    "log_level": "info",
    "storage": {
        "input": {"type": "s3_compatible", "presigned_url": "http://127.0.0.1:9/b/in"},
        "results": {"type": "s3_compatible", "presigned_url": "http://127.0.0.1:9/b/out"},
    },
}
FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
statuses: Counter[int] = Counter()


class Raw(str):
    """A JSON token written as is (NaN, Infinity, 1e400): json.dumps cannot make some."""


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


HOSTILE = (
    st.sampled_from(
        [
            None,
            True,
            0,
            -1,
            2**63,
            -(2**63) - 1,
            2**64,
            10**30,
            1e308,
            -0.0,
            Raw("NaN"),
            Raw("-Infinity"),
            Raw("1e400"),
            Raw("1" * 5000),
            "",
            "\ud800",
            "\x00",
            "x" * 20000,
            "OPENQASM 3.0; qubit[100000000] q;",
            [],
            {},
            {"__type__": "ndarray", "__value__": "not base64!"},
            {"__type__": "QuantumCircuit", "__value__": "eJwDAAAAAAE="},
            {"__type__": "spmatrix", "__value__": "AAAA"},
            {"__type__": 12, "__value__": None},
            deep(150),
        ]
    )
    | st.text(max_size=40)
    | st.integers()
    | st.floats(allow_nan=False)
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the tree (the root excluded), parents before children."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            out.append((*prefix, key))
            out.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.append((*prefix, index))
            out.extend(paths(child, (*prefix, index)))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    body = copy.deepcopy(base)
    places = paths(body)
    place = draw(st.sampled_from(places))
    parent = body
    for step in place[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
    if action == "replace":
        parent[place[-1]] = draw(HOSTILE)
    elif action == "delete" and isinstance(parent, dict):
        del parent[place[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(["zz", "__type__", "\udc80", "params"]))] = draw(HOSTILE)
    return body


def dumps(value: Any) -> str:
    """JSON text, with Raw tokens spliced in verbatim."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("fuzz-mutations"), "--backends", "fake_manila", workers=1
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(target: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.url, headers=bearer(target.url), timeout=120) as c:
        yield c


def check(response: httpx.Response) -> None:
    statuses[response.status_code] += 1
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["status_code"] == response.status_code, body
        error = body["errors"][0]
        assert error["code"] and error["message"], body


def post(client: httpx.Client, path: str, body: Any) -> None:
    text = dumps(body).encode("utf-8", "surrogatepass")
    check(client.post(path, content=text, headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_mutated_runtime_submissions(client: httpx.Client, capture: str) -> None:
    @FUZZ
    @given(body=mutated(CAPTURES[capture]))
    def run(body: Any) -> None:
        post(client, "/api/v1/jobs", body)

    run()


def test_mutated_direct_access_submissions(client: httpx.Client) -> None:
    counter = iter(range(10**6))

    @FUZZ
    @given(body=mutated(DIRECT_ACCESS))
    def run(body: Any) -> None:
        if isinstance(body, dict) and body.get("id") == "fuzz":
            body["id"] = f"fuzz-{next(counter)}"  # a fresh id, or every job is a duplicate
        post(client, "/v1/jobs", body)

    run()


def test_mutated_tags_and_sessions(client: httpx.Client) -> None:
    job_id = client.post("/api/v1/jobs", json=CAPTURES["sampler"]).json()["id"]

    @FUZZ
    @given(
        tags=mutated({"tags": ["a", "b"]}),
        session=mutated({"mode": "batch", "backend": "fake_manila", "max_ttl": 60}),
        update=mutated({"accepting_jobs": False}),
    )
    def run(tags: Any, session: Any, update: Any) -> None:
        text = dumps(tags).encode("utf-8", "surrogatepass")
        check(client.put(f"/api/v1/jobs/{job_id}/tags", content=text))
        post(client, "/api/v1/sessions", session)
        created = client.post("/api/v1/sessions", json={"mode": "batch", "backend": "fake_manila"})
        text = dumps(update).encode("utf-8", "surrogatepass")
        check(client.patch(f"/api/v1/sessions/{created.json()['id']}", content=text))

    run()


QUERY_NAMES = [
    "limit",
    "offset",
    "pending",
    "program",
    "backend",
    "session_id",
    "sort",
    "created_after",
    "created_before",
    "tags",
    "exclude_params",
    "zz",
]
QUERY_VALUES = st.sampled_from(
    [
        "",
        "-1",
        "0",
        "1",
        "9223372036854775808",
        "1e3",
        "true",
        "maybe",
        "ASC",
        "%ED%A0%80",
        "2026-01-01T00:00:00Z",
        "99999-01-01",
        "x" * 3000,
    ]
) | st.text(max_size=20)


def test_mutated_list_filters(client: httpx.Client) -> None:
    @FUZZ
    @given(query=st.lists(st.tuples(st.sampled_from(QUERY_NAMES), QUERY_VALUES), max_size=6))
    def run(query: list[tuple[str, str]]) -> None:
        pairs = [(k, v.encode("utf-8", "replace").decode()) for k, v in query]
        check(client.get("/api/v1/jobs", params=pairs))
        check(client.get("/api/v1/tags", params=[("search", v) for _, v in pairs[:1]] or None))

    run()


def test_afterwards_the_server_is_healthy_and_every_job_ends_and_reads(
    target: EmulatorServer, client: httpx.Client
) -> None:
    assert target.health()["status"] == "ok"

    def settled() -> list[dict[str, Any]] | None:
        listed = client.get("/api/v1/jobs", params={"limit": 200, "exclude_params": "true"})
        assert listed.status_code == 200, listed.text
        jobs: list[dict[str, Any]] = listed.json()["jobs"]
        live = [j for j in jobs if j["state"]["status"] in ("Queued", "Running")]
        return None if live else jobs

    jobs = wait_until(settled, timeout=300)
    assert jobs, "the fuzzer never got a job accepted: it tests nothing"
    for job in jobs:
        assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 200
        assert client.get(f"/api/v1/jobs/{job['id']}/results").status_code in (200, 204)
    direct = client.get("/v1/jobs")
    assert direct.status_code == 200
    for job in direct.json()["jobs"]:
        assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    print(f"mutation fuzzer: {sum(statuses.values())} requests, statuses {dict(statuses)}")
