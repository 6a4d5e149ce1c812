"""Browser-test fixtures: headless Debian Chromium through Playwright, the dashboard as a process.

    pytest tests/browser -m browser

Chromium is Debian's (`apt-get install chromium`), launched through `executable_path`:
`playwright install` downloads a browser and cannot run here (DESIGN.md §7).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from backroom.settings import Settings
from tests.conftest import free_port
from tests.helpers import settings_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BACKROOM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"


def run_async(coro: Any) -> Any:
    """asyncio.run in a helper thread: Playwright's sync API keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class DashboardProcess:
    """`backroom dashboard` as a subprocess on a fixed port, so a test can restart it."""

    def __init__(self, settings: Settings, port: int, log_path: Path) -> None:
        self.settings = settings
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 30) -> DashboardProcess:
        env = settings_env(self.settings)
        env["BACKROOM_DASHBOARD_PORT"] = str(self.port)
        env["BACKROOM_DASHBOARD_HOST"] = "127.0.0.1"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "dashboard"], env=env, cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dashboard exited: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dashboard did not answer in {timeout_s}s: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


@pytest.fixture
def dashboard_factory(tmp_path: Path) -> Iterator[Callable[[Settings], DashboardProcess]]:
    started: list[DashboardProcess] = []

    def make(settings: Settings) -> DashboardProcess:
        d = DashboardProcess(settings, free_port(), tmp_path / f"dashboard-{len(started)}.log").start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in the main
    # thread while it is open, which would break every asyncio test collected after this one.
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page whose console errors and uncaught exceptions are collected in `page.errors`."""
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    # No request may leave the machine: anything not to the dashboard's host is recorded.
    outside: list[str] = []
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:")) else None)
    pg.errors = errors
    pg.outside_requests = outside
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield pg
    finally:
        context.close()
