"""The control plane's guard in-process: Host values, origins, tokens, media types, the page."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from emulator.api.admin.guard import HostPolicy, check, same_origin, split_host
from emulator.api.admin.openapi import OPENAPI
from emulator.api.admin.routes import DASHBOARD, DASHBOARD_CSP
from emulator.config import Settings


def policy(**settings: Any) -> HostPolicy:
    return HostPolicy.from_settings(Settings(**settings))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost:8000", ("localhost", 8000)),
        ("localhost.", ("localhost", None)),
        ("[::1]:8000", ("::1", 8000)),
        ("::1", ("::1", None)),
        ("", None),
        ("localhost:port", None),
        ("localhost:99999", None),
        ("user@localhost", None),
        ("localhost/path", None),
        ("[not-v6]:1", None),
        ("a b", None),
    ],
)
def test_split_host(value: str, expected: tuple[str, int | None] | None) -> None:
    assert split_host(value) == expected


def test_loopback_names_and_the_bind_address_are_allowed_others_not() -> None:
    default = policy()
    for host in ("localhost", "localhost:1", "127.0.0.1:8000", "[::1]:8000", "::1", "a.localhost"):
        assert default.allows(host), host
    for host in ("attacker.example", "127.0.0.2", "localhost.attacker.example", "0.0.0.0:8000", ""):
        assert not default.allows(host), host
    assert policy(host="emulator.lan").allows("emulator.lan:8000")
    assert not policy(host="0.0.0.0").allows("0.0.0.0:8000")  # "every interface" is no name


def test_allowed_hosts_entries_name_any_port_or_one() -> None:
    configured = policy(allowed_hosts=("lab.example", "ws.example:7000", "[fd00::1]:80"))
    assert configured.allows("lab.example:1") and configured.allows("LAB.example")
    assert configured.allows("ws.example:7000") and not configured.allows("ws.example:7001")
    assert not configured.allows("ws.example")  # port 80
    assert configured.allows("[fd00::1]") and not configured.allows("[fd00::1]:81")
    assert policy(allowed_hosts=("*",)).allows("anything.example:5")


def test_same_origin_compares_scheme_host_and_port() -> None:
    assert same_origin("http://127.0.0.1:8000", "http", "127.0.0.1:8000")
    assert same_origin("http://localhost", "http", "localhost:80")
    assert same_origin("http://[::1]:8000", "http", "[::1]:8000")
    for origin in ("http://127.0.0.1:8001", "https://127.0.0.1:8000", "null", "http://localhost:8000"):
        assert not same_origin(origin, "http", "127.0.0.1:8000"), origin


def scope(method: str, path: str, *headers: tuple[str, str]) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    if not any(k == b"host" for k, _ in raw):
        raw.append((b"host", b"127.0.0.1:8000"))
    return {
        "type": "http",
        "method": method,
        "scheme": "http",
        "path": "/_emulator" + path,
        "root_path": "/_emulator",
        "headers": raw,
    }


def refusal(request: dict[str, Any], **settings: Any) -> tuple[int, str] | None:
    made = Settings(**settings)
    response = check(request, made, HostPolicy.from_settings(made))
    if response is None:
        return None
    error = json.loads(bytes(response.body))["error"]
    return error["status"], error["field"]


def test_checks_in_order_host_then_site_then_token_then_media_type() -> None:
    token = {"admin_token": "t"}
    assert refusal(scope("POST", "/reset", ("Host", "evil.example"), ("Origin", "x"))) == (
        400,
        "Host",
    )
    assert refusal(scope("GET", "/info", ("Host", "a"), ("Host", "b"))) == (400, "Host")
    assert refusal(scope("POST", "/reset", ("Sec-Fetch-Site", "same-site")), **token) == (
        403,
        "Sec-Fetch-Site",
    )
    assert refusal(scope("POST", "/reset", ("Origin", "http://127.0.0.1:1")), **token) == (
        403,
        "Origin",
    )
    assert refusal(scope("POST", "/reset", ("Content-Type", "text/plain")), **token) == (
        401,
        "Authorization",
    )
    authorized = ("Authorization", "Bearer t")
    text = ("Content-Type", "text/plain")
    assert refusal(scope("POST", "/reset", authorized, text), **token) == (415, "Content-Type")
    assert refusal(scope("POST", "/reset", authorized), **token) is None


def test_media_types() -> None:
    def post(*headers: tuple[str, str]) -> tuple[int, str] | None:
        return refusal(scope("POST", "/faults", *headers))

    assert post() is None and post(("Content-Length", "0")) is None
    assert post(("Content-Type", "application/json"), ("Content-Length", "2")) is None
    assert post(("Content-Type", "Application/JSON; charset=utf-8")) is None
    for headers in (
        [("Content-Length", "2")],
        [("Transfer-Encoding", "chunked")],
        [("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", "0")],
        [("Content-Type", "application/json-seq")],
        [("Content-Type", "text/plain; x=application/json")],
    ):
        assert post(*headers) == (415, "Content-Type"), headers


def test_the_token_and_what_stays_public() -> None:
    token = {"admin_token": "t"}
    for path in ("/", "/health", "/info", "/openapi.json"):
        request = scope("GET", path)
        assert refusal(request, **token) is None
        assert request["state"]["admin"] is False
    for path in ("/jobs", "/jobs/x", "/sessions", "/requests", "/faults", "/info/"):
        assert refusal(scope("GET", path), **token) == (401, "Authorization"), path
    for given in ("Bearer t", "bearer t", "Bearer  t"):
        request = scope("GET", "/jobs", ("Authorization", given))
        assert refusal(request, **token) is None and request["state"]["admin"] is True
    for given in ("Bearer tt", "Basic t", "t", "Bearer"):
        assert refusal(scope("GET", "/jobs", ("Authorization", given)), **token), given
    request = scope("GET", "/jobs")
    assert refusal(request) is None and request["state"]["admin"] is True  # no token set


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_dashboard_has_only_what_its_csp_allows() -> None:
    page = _Page()
    page.feed(DASHBOARD)
    assert [t for t, _ in page.tags].count("script") == 1
    assert [t for t, _ in page.tags].count("style") == 1
    for tag, attrs in page.tags:
        assert "src" not in attrs and "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], tag
    # The script builds markup too: no inline style or handler attributes in it either.
    assert "style=" not in DASHBOARD and " onclick" not in DASHBOARD
    assert "unsafe" not in DASHBOARD_CSP and DASHBOARD_CSP.count("'sha256-") == 2


def test_the_openapi_document_names_the_token_and_the_refusals() -> None:
    scheme = OPENAPI["components"]["securitySchemes"]["adminToken"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    public = {"/_emulator/", "/_emulator/health", "/_emulator/info", "/_emulator/openapi.json"}
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            responses = set(operation["responses"])
            assert ("401" in responses) == (path not in public), (method, path)
            change = method not in ("get", "head", "options")
            assert ({"403", "415"} <= responses) == change, (method, path)
