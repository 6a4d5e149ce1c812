"""The ingest API's `/docs` in headless Chromium: Swagger UI from local files, under the CSP.

    pytest tests/browser/test_ingest_docs_browser.py -m browser

`backroom ingest` runs as a process against the real broker (its lifespan starts the producer).
The page must render every endpoint with no console error (a CSP violation is one) and no
request leaving the machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from backroom.settings import Settings
from tests.browser.conftest import ARTIFACTS
from tests.conftest import free_port
from tests.helpers import ROOT, settings_env

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_ingest_docs_render_offline_under_the_csp(kafka_settings: Settings, page: Any) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ingest", "--port", str(port)],
        env=settings_env(kafka_settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/healthz").json()["status"] == "ok":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        csp = httpx.get(f"{base}/docs").headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        page.goto(f"{base}/docs")
        expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
        assert page.locator(".opblock").count() >= 10  # 5 topics x single + batch
        expect(page.locator(".opblock-summary-path", has_text="/api/v1/sales/batch")).to_have_count(1)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ingest-docs.png"))
        assert page.errors == [] and missing == [], (page.errors, missing)
        assert page.outside_requests == [], page.outside_requests
    finally:
        proc.terminate()
        proc.wait(timeout=20)
