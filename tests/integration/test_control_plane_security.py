"""The control plane against other web pages and other tenants: cross-site requests, foreign
Host names, non-JSON bodies, reads without the admin token, and the dashboard's headers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import bearer
from tests.integration.test_dashboard import CHROMIUM, FLAGS, require_chromium
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorControl, EmulatorServer, emulator_env

pytestmark = pytest.mark.slow

TOKEN = "s3cret-admin-token"
PUBLIC_INFO = {
    "version",
    "emulator",
    "default_instance",
    "api_keys_required",
    "s3_credentials_required",
}


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """No admin token, no workers (jobs stay Queued, so they are there to be reset)."""
    server = EmulatorServer(tmp_path_factory.mktemp("open"), workers=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        tmp_path_factory.mktemp("token"),
        "--admin-token",
        TOKEN,
        "--allowed-hosts",
        "lab.example,ws.example:7000",
        workers=0,
    ).start()
    yield server
    server.stop()


def submit_job(server: EmulatorServer) -> str:
    """A job through the Runtime API (as a tenant), Queued for good on a server without workers."""
    response = httpx.post(
        server.url + "/api/v1/jobs", json=sampler_body(), headers=bearer(server.url), timeout=60
    )
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def job_exists(server: EmulatorServer, job_id: str) -> bool:
    response = httpx.get(f"{server.url}/_emulator/jobs/{job_id}", headers=_auth(server))
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def _auth(server: EmulatorServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"} if "--admin-token" in server.extra else {}


def assert_refused(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["field"] == field and error["message"]


# -- other web pages ------------------------------------------------------------------------


@contextmanager
def page_server(html: str) -> Iterator[str]:
    """A second local HTTP server (another loopback port) serving one page: the other site."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


ATTACK_PAGE = """<!doctype html><html><body>
<form id="reset-form" method="post" action="{target}/_emulator/reset"></form>
<script>
async function attempt(url, init) {{
  try {{
    const response = await fetch(url, init);
    return response.type === "opaque" ? "sent" : String(response.status);
  }} catch (error) {{
    return "failed";
  }}
}}
window.attack = async () => [
  // A CORS "simple" request the browser sends without asking: text/plain, then no type.
  await attempt("{target}/_emulator/reset",
    {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}}),
  await attempt("{target}/_emulator/reset",
    {{method: "POST", mode: "no-cors", body: new Blob(["{{}}"])}}),
  // JSON needs a CORS preflight, which finds no CORS headers: the POST is never sent.
  await attempt("{target}/_emulator/faults",
    {{method: "POST", headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{status: 503}})}}),
  // Control: the browser does deliver cross-site POSTs to this port (journaled, 401).
  await attempt("{target}/api/v1/jobs", {{method: "POST", mode: "no-cors", body: "x"}}),
];
</script></body></html>"""


def test_a_page_on_another_port_cannot_reset_the_emulator(open_server: EmulatorServer) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    job_id = submit_job(open_server)
    httpx.delete(open_server.url + "/_emulator/requests").raise_for_status()
    target = open_server.url
    with page_server(ATTACK_PAGE.format(target=target)) as page_url:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                page = browser.new_page()
                page.goto(page_url)
                assert page.evaluate("attack()") == ["sent", "sent", "failed", "sent"]
                journal = httpx.get(target + "/_emulator/requests").json()["requests"]
                assert [(e["method"], e["path"], e["status"]) for e in journal] == [
                    ("POST", "/api/v1/jobs", 401)
                ]
                assert job_exists(open_server, job_id)

                # A plain HTML form: the browser navigates to the refusal.
                with page.expect_navigation():
                    page.evaluate("document.getElementById('reset-form').submit()")
                assert page.url == target + "/_emulator/reset"
                assert '"status":403' in page.inner_text("body")
            finally:
                browser.close()
    assert job_exists(open_server, job_id)
    assert httpx.get(target + "/_emulator/faults").json()["faults"] == []


def test_cross_site_changes_are_refused_same_origin_ones_not(open_server: EmulatorServer) -> None:
    reset = open_server.url + "/_emulator/reset"
    job_id = submit_job(open_server)
    for site in ("cross-site", "same-site"):
        assert_refused(httpx.post(reset, headers={"Sec-Fetch-Site": site}), 403, "Sec-Fetch-Site")
    port = open_server.port
    for origin in (f"http://127.0.0.1:{port + 1}", f"http://localhost:{port}", "null"):
        assert_refused(httpx.post(reset, headers={"Origin": origin}), 403, "Origin")
    assert job_exists(open_server, job_id)
    # Reads stay open to pages (without CORS headers, another page cannot read the answer).
    assert httpx.get(open_server.url + "/_emulator/jobs", headers={"Sec-Fetch-Site": "cross-site"})
    # The dashboard's own origin, a navigation typed in the address bar, and plain clients.
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert httpx.post(reset, headers=same).status_code == 200
    assert httpx.post(reset, headers={"Sec-Fetch-Site": "none"}).status_code == 200
    localhost = f"http://localhost:{port}/_emulator/reset"
    assert httpx.post(localhost, headers={"Origin": f"http://localhost:{port}"}).status_code == 200
    assert not job_exists(open_server, job_id)


def test_changes_need_a_json_body(open_server: EmulatorServer) -> None:
    faults = open_server.url + "/_emulator/faults"
    rule = b'{"status": 503, "path": "/nowhere"}'
    for headers in (
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},  # a body without a type (a Blob a page posts)
    ):
        assert_refused(httpx.post(faults, content=rule, headers=headers), 415, "Content-Type")
    # A form's empty body still declares a form type.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    empty_form = httpx.post(open_server.url + "/_emulator/reset", headers=form)
    assert_refused(empty_form, 415, "Content-Type")
    assert httpx.get(faults).json()["faults"] == []
    added = httpx.post(faults, content=rule, headers={"Content-Type": "application/json"})
    assert added.status_code == 201, added.text
    assert httpx.delete(faults).status_code == 204  # no body, no type: fine
    assert httpx.post(open_server.url + "/_emulator/reset").status_code == 200


def test_no_cors_headers_so_preflights_fail(open_server: EmulatorServer) -> None:
    preflight = httpx.options(
        open_server.url + "/_emulator/reset",
        headers={
            "Origin": "http://127.0.0.1:9",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code >= 400
    read = httpx.get(open_server.url + "/_emulator/jobs", headers={"Origin": "http://127.0.0.1:9"})
    for response in (preflight, read):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


# -- Host names ---------------------------------------------------------------------------------


def test_a_foreign_host_is_refused_loopback_names_are_not(open_server: EmulatorServer) -> None:
    job_id = submit_job(open_server)
    admin = open_server.url + "/_emulator"
    for host in ("attacker.example", f"attacker.example:{open_server.port}", "127.0.0.2"):
        for path in ("/", "/info", "/health"):
            assert_refused(httpx.get(admin + path, headers={"Host": host}), 400, "Host")
        assert_refused(httpx.post(admin + "/reset", headers={"Host": host}), 400, "Host")
    assert job_exists(open_server, job_id)
    for host in ("localhost", f"localhost:{open_server.port}", "127.0.0.1", "[::1]:8000"):
        assert httpx.get(admin + "/info", headers={"Host": host}).status_code == 200, host
    assert httpx.get(admin + "/", headers={"Host": "dashboard.localhost"}).status_code == 200
    # Only the control plane: the APIs are reached through other names in workshops.
    api = httpx.get(
        open_server.url + "/api/v1/backends",
        headers={**bearer(open_server.url), "Host": "attacker.example"},
    )
    assert api.status_code == 200, api.text


def test_allowed_hosts_add_names(token_server: EmulatorServer) -> None:
    info = token_server.url + "/_emulator/info"
    for host in ("lab.example", "lab.example:8080", "ws.example:7000"):
        assert httpx.get(info, headers={"Host": host}).status_code == 200, host
    assert_refused(httpx.get(info, headers={"Host": "ws.example:7001"}), 400, "Host")
    assert_refused(httpx.get(info, headers={"Host": "ws.example"}), 400, "Host")


# -- the admin token ----------------------------------------------------------------------------


def test_every_tenant_s_data_needs_the_admin_token(token_server: EmulatorServer) -> None:
    job_id = submit_job(token_server)
    admin = token_server.url + "/_emulator"
    token = {"Authorization": f"Bearer {TOKEN}"}
    reads = [f"/jobs/{job_id}", "/jobs", "/sessions", "/requests", "/progression", "/outcomes"]
    reads += ["/faults", "/reservations", "/backends"]
    for path in reads:
        refused = httpx.get(admin + path)
        assert_refused(refused, 401, "Authorization")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.get(admin + path, headers={"Authorization": "Bearer no"})
        assert_refused(wrong, 401, "Authorization")
        assert httpx.get(admin + path, headers=token).status_code == 200, path
    assert job_id in {j["id"] for j in httpx.get(admin + "/jobs", headers=token).json()["jobs"]}

    # Public: what `python -m emulator env` and health checks read, nothing about tenants.
    info = httpx.get(admin + "/info").json()
    assert set(info) == PUBLIC_INFO and info["emulator"] is True
    health = httpx.get(admin + "/health").json()
    assert health["status"] == "ok" and "workers_ready" in health and "jobs" not in health
    assert httpx.get(admin + "/health", headers=token).json()["jobs"]["queued"] >= 1
    full = httpx.get(admin + "/info", headers=token).json()
    assert full["config"]["admin_token"]["value"] == "(set)" and full["counts"]["jobs"]
    assert httpx.get(admin + "/").status_code == 200  # the page; it asks for the token
    env = emulator_env(token_server.url)
    assert env["QISKIT_IBM_INSTANCE"] == info["default_instance"]

    control = EmulatorControl(token_server.url, admin_token=TOKEN)
    try:
        assert job_id in [j["id"] for j in control.jobs()]
        assert control.job(job_id)["state"] == "queued"
        assert isinstance(control.sessions(), list) and control.requests()
        assert control.info()["config"]["workers"]["value"] == 0
    finally:
        control.close()


def test_the_openapi_document_states_the_token_where_the_server_asks_for_it(
    token_server: EmulatorServer,
) -> None:
    from emulator.api.admin.routes import routes

    admin = token_server.url + "/_emulator"
    values = {"{job_id}": "x", "{rule_id}": "1", "{name}": "ibm_fez"}
    document = httpx.get(admin + "/openapi.json").json()
    assert document["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    for route in routes:
        path = "/_emulator" + route.path  # type: ignore[attr-defined]
        for method in sorted(set(route.methods or ()) - {"HEAD"}):  # type: ignore[attr-defined]
            operation = document["paths"][path][method.lower()]
            url = admin + route.path  # type: ignore[attr-defined]
            for name, value in values.items():
                url = url.replace(name, value)
            status = httpx.request(method, url).status_code
            documented = "401" in operation["responses"]
            assert (status == 401) == documented, (method, path, status)
            assert (operation["security"] == [{"adminToken": []}]) == documented, (method, path)
            change = method not in ("GET", "HEAD", "OPTIONS")
            assert {"403", "415"} <= set(operation["responses"]) or not change, (method, path)


# -- headers ------------------------------------------------------------------------------------


def test_the_dashboard_and_the_json_answers_carry_security_headers(
    open_server: EmulatorServer,
) -> None:
    page = httpx.get(open_server.url + "/_emulator/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = dict(
        (part.split(" ", 1) + [""])[:2]
        for part in (p.strip() for p in page.headers["content-security-policy"].split(";"))
    )
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["script-src"].startswith("'sha256-") and " " not in policy["script-src"]
    assert policy["style-src"].startswith("'sha256-") and " " not in policy["style-src"]
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    for path in ("/info", "/jobs", "/jobs/nope", "/openapi.json"):
        answer = httpx.get(open_server.url + "/_emulator" + path)
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["cache-control"] == "no-store", path
