"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

CI installs chromium (.ci/run) and sets IBMQ_EMULATOR_REQUIRE_BROWSER=1, so there the test can
only pass by running; on a machine without chromium it is skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import EstimatorV2, SamplerV2

from tests.circuits import bell, isa
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


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, EmulatorServer]]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("IBMQ_EMULATOR_REQUIRE_BROWSER") == "1":
            pytest.fail(f"chromium not found at {CHROMIUM} (install Debian's chromium)")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    server = EmulatorServer(tmp_path_factory.mktemp("dashboard"), workers=1).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                yield browser.new_page(), server
            finally:
                browser.close()
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
