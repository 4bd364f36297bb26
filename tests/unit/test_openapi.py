"""The OpenAPI documents of the emulated APIs are valid and match the routes they describe."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Match, Route
from starlette.testclient import TestClient

from emulator.api.direct_access import routes as direct_access
from emulator.api.direct_access import schemas as da_schemas
from emulator.api.runtime import routes as runtime
from emulator.api.runtime import schemas as runtime_schemas
from emulator.app import create_app
from emulator.config import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def served(routes: list[Any], prefix: str) -> set[tuple[str, str]]:
    """(method, path) of every documented-able route: HEAD and the document itself aside."""
    out = set()
    for route in routes:
        assert isinstance(route, Route)
        if route.path.endswith("/openapi.json"):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                out.add((method, prefix + route.path))
    return out


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}


def test_each_api_versions_document_is_valid_and_together_they_name_the_served_routes() -> None:
    from emulator.api.runtime.versions import API_VERSIONS

    docs = {v["version"]: runtime.openapi_document(v["version"]) for v in API_VERSIONS}
    for version, doc in docs.items():
        validate(doc)
        assert doc["info"]["version"] == version
    assert set().union(*(documented(d) for d in docs.values())) == served(runtime.routes, "/api/v1")
    transpiled = ("GET", "/api/v1/jobs/{job_id}/transpiled_circuits")
    assert transpiled in documented(docs["2025-05-01"])
    assert transpiled not in documented(docs["2026-02-01"])
    assert "usage.value" in docs["2026-04-15"]["info"]["description"]
    assert "usage.value" not in docs["2026-03-15"]["info"]["description"]
    assert runtime.openapi_document() == docs["2026-04-15"]


@pytest.mark.parametrize(
    ("doc", "routes"),
    [
        (
            direct_access.openapi_document(),
            served(direct_access.routes, "/v1") | served(direct_access.version_routes, ""),
        ),
    ],
    ids=["direct_access"],
)
def test_the_document_is_valid_and_names_exactly_the_served_routes(
    doc: dict[str, Any], routes: set[tuple[str, str]]
) -> None:
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert documented(doc) == routes


def test_query_parameters_are_the_parsers_own_specs() -> None:
    operation = runtime.openapi_document()["paths"]["/api/v1/jobs"]["get"]
    names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert names == {spec.name for spec in runtime_schemas.JOB_LIST_QUERY}
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 200}


@pytest.mark.parametrize(
    "name",
    [
        "post_jobs_sampler_body.json",
        "post_jobs_sampler_options_body.json",
        "post_jobs_estimator_body.json",
        "post_jobs_executor_sampler_body.json",
    ],
)
def test_captured_client_bodies_match_the_published_schema(name: str) -> None:
    body = json.loads((FIXTURES / name).read_text())
    jsonschema.validate(body, runtime_schemas.JOB_REQUEST_SCHEMA)


def test_a_direct_access_body_matches_its_schema() -> None:
    entry = {"type": "s3_compatible", "presigned_url": "http://127.0.0.1:9/b/k?X-Amz-Signature=1"}
    body = {
        "id": "job-1",
        "backend": "ibm_fez",
        "program_id": "sampler",
        "timeout_secs": 60,
        "log_level": "info",
        "storage": {"input": entry, "results": entry, "logs": entry},
    }
    jsonschema.validate(body, da_schemas.JOB_REQUEST_SCHEMA)
    assert da_schemas.parse_job_request(body).id == "job-1"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi"), workers=0)
    with TestClient(create_app(settings, start_workers=False)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "title"),
    [("/api/openapi.json", "Qiskit Runtime"), ("/v1/openapi.json", "Direct Access")],
)
def test_documents_are_served_without_credentials(
    client: TestClient, path: str, title: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json()["info"]["title"].startswith(title)


@pytest.mark.parametrize("module", [runtime, direct_access], ids=["runtime", "direct_access"])
def test_routes_of_one_method_never_match_the_same_url(module: Any) -> None:
    """Dispatch tries the polled routes first (`dispatch_routes`): that is safe only while no
    URL matches two routes of one method. Each route's path, with its parameters filled in,
    must be matched by that route alone."""
    routes = [r for r in module.routes if isinstance(r, Route)]
    for route in routes:
        url = re.sub(r"\{[^}]+\}", "x1", route.path)
        for method in route.methods or ():
            scope = {"type": "http", "path": url, "method": method, "root_path": ""}
            full = [r for r in routes if r.matches(scope)[0] == Match.FULL]
            assert full == [route], (method, url, [r.path for r in full])
