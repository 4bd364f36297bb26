"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

CI installs chromium (.ci/run) and sets IBMQ_EMULATOR_REQUIRE_BROWSER=1, so there the test can
only pass by running; on a machine without chromium it is skipped. The page runs under its
Content-Security-Policy, so anything the policy blocks would show as a console error here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import EstimatorV2, SamplerV2

from tests.circuits import bell, isa
from tests.conftest import bearer
from tests.integration.test_runtime_http import sampler_body
from tests.support import EmulatorServer, service_for

pytestmark = pytest.mark.slow

CHROMIUM = (
    os.environ.get("IBMQ_EMULATOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
# Without these, chromium reaches for Google's hosts at start and is refused (closed network).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


TOKEN_KEY = "ibmq-emulator-admin-token"


def require_chromium() -> None:
    """Skip without chromium; fail instead where CI requires the browser tests to run."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("IBMQ_EMULATOR_REQUIRE_BROWSER") == "1":
            pytest.fail(f"chromium not found at {CHROMIUM} (install Debian's chromium)")
        pytest.skip("chromium is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module (each start costs seconds)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield instance
        finally:
            instance.close()


def new_page(browser: Any) -> tuple[Any, list[str]]:
    """A page, and the console errors it logs (a CSP violation is one)."""
    page = browser.new_page()
    errors: list[str] = []

    def record(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", record)
    return page, errors


@pytest.fixture(scope="module")
def page(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, EmulatorServer]]:
    server = EmulatorServer(tmp_path_factory.mktemp("dashboard"), workers=1).start()
    try:
        browser_page, errors = new_page(browser)
        yield browser_page, server
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        server.stop()


def test_a_job_appears_completes_and_shows_its_counts(
    page: tuple[Any, EmulatorServer], client_env: dict[str, str]
) -> None:
    browser_page, server = page
    browser_page.goto(server.url + "/_emulator/")
    browser_page.wait_for_selector("#no-jobs", timeout=15_000)
    assert "a local emulator, not IBM Quantum" in browser_page.inner_text("header")
    assert browser_page.inner_text('#backends tr[data-backend="ibm_fez"]').count("online") == 1

    with service_for(server) as service:
        backend = service.backend("fake_manila")
        job = SamplerV2(mode=backend).run([isa(backend, bell())])
        job_id = job.job_id()
        # The page refreshes itself: the job appears, then shows as completed.
        row = f'#jobs tr[data-job="{job_id}"]'
        browser_page.wait_for_selector(row, timeout=30_000)
        browser_page.wait_for_selector(f"{row} .state.completed", timeout=60_000)
        counts = job.result()[0].data.meas.get_counts()

    browser_page.click(f"{row} a")
    browser_page.wait_for_selector("#result .histogram", timeout=15_000)
    assert browser_page.inner_text("#job-id") == job_id
    bars = {
        bar.get_attribute("data-outcome"): int(bar.inner_text().split()[-1])
        for bar in browser_page.query_selector_all("#result .bar")
    }
    assert bars == counts  # the histogram is the client's own counts
    widths = [bar.bounding_box()["width"] for bar in browser_page.query_selector_all(".bar div")]
    assert max(widths) == 300 and min(widths) > 0  # sized under the CSP (no inline styles)
    shown = [int(bar.inner_text().split()[-1]) for bar in browser_page.query_selector_all(".bar")]
    assert shown == sorted(shown, reverse=True)  # most frequent outcome first
    assert "sampler" in browser_page.inner_text("#params")
    assert "completed" in browser_page.inner_text("#log").lower()


def test_an_estimator_job_page_shows_its_expectation_values(
    page: tuple[Any, EmulatorServer], client_env: dict[str, str]
) -> None:
    browser_page, server = page
    with service_for(server) as service:
        backend = service.backend("fake_manila")
        circuit = isa(backend, bell(measure=False))
        observable = SparsePauliOp("ZZ").apply_layout(circuit.layout)
        job = EstimatorV2(mode=backend).run([(circuit, observable)])
        evs = float(job.result()[0].data.evs)
    browser_page.goto(f"{server.url}/_emulator/#/jobs/{job.job_id()}")
    browser_page.wait_for_selector("#result .evs", timeout=15_000)
    shown = browser_page.inner_text("#result .evs")
    assert abs(float(shown) - evs) < 1e-9


def test_with_an_admin_token_the_page_asks_for_it(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    token = "dashboard-s3cret"
    server = EmulatorServer(
        tmp_path_factory.mktemp("dashboard-token"), "--admin-token", token, workers=0
    ).start()
    try:
        job = httpx.post(
            server.url + "/api/v1/jobs", json=sampler_body(), headers=bearer(server.url)
        )
        job_id = job.json()["id"]
        browser_page, errors = new_page(browser)
        browser_page.goto(server.url + "/_emulator/")
        browser_page.wait_for_selector("#token-form", timeout=15_000)
        assert "needs its admin token" in browser_page.inner_text("#token-message")
        assert not browser_page.query_selector("#jobs")  # no tenant's job without it

        browser_page.fill("#token", "not-the-token")
        browser_page.press("#token", "Enter")
        browser_page.wait_for_selector("#token-message:has-text('refused')", timeout=15_000)

        browser_page.fill("#token", token)
        browser_page.click("#token-form button")
        browser_page.wait_for_selector(f'#jobs tr[data-job="{job_id}"]', timeout=15_000)
        assert browser_page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == token
        assert token not in browser_page.url
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        server.stop()
