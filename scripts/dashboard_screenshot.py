"""Regenerate the README screenshots of the dashboard from a real, short simulator run.

    .venv/bin/python scripts/dashboard_screenshot.py            # writes docs/img/dashboard*.png

Starts its own embedded Kafka broker on free ports under a temporary data dir, the worker, the
dashboard and `backroom simulate` (as a deployment runs them), then photographs the page in
headless Debian Chromium and stops everything, broker included.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backroom.settings import Settings  # noqa: E402
from broker.embedded import EmbeddedBroker  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=settings.subprocess_env(), cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def status(url: str) -> dict:
    with urllib.request.urlopen(url + "api/status", timeout=5) as r:
        return dict(orjson.loads(r.read()))


def main(stores: int = 6, skus: int = 24, days: float = 2.0, out: Path = ROOT / "docs" / "img") -> None:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="backroom-shot-"))
    settings = Settings(
        _env_file=None, data_dir=tmp / "data", broker_port=free_port(),  # type: ignore[call-arg]
        broker_controller_port=free_port(), dashboard_port=free_port(), partitions=2,
    )
    broker = EmbeddedBroker(settings)
    broker.start(timeout_s=120)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(ensure_topics(settings))
        procs.append(spawn(settings, tmp / "worker.log", "worker"))
        procs.append(spawn(settings, tmp / "dashboard.log", "dashboard"))
        sim = spawn(settings, tmp / "simulate.log", "simulate", "--stores", str(stores), "--skus", str(skus),
                    "--days", str(days), "--speed", "0", "--seed", "7")
        procs.append(sim)
        url = f"http://127.0.0.1:{settings.dashboard_port}/"
        sim.wait(timeout=300)
        # Wait until the dashboard has caught up: the record count stops moving.
        last, steady = -1, 0
        while steady < 3:
            time.sleep(1)
            try:
                n = status(url)["kafka"]["records"]
            except OSError:
                continue
            steady = steady + 1 if n == last and n > 0 else 0
            last = n
        out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.goto(url)
            page.wait_for_selector("#heatmap td.cell")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "dashboard.png"))
            page.click("#heatmap th.store-link >> nth=0")
            page.wait_for_selector("#sku-table tbody tr")
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "dashboard-store.png"))
            browser.close()
        print(orjson.dumps(status(url)["counts"]).decode(), f"screenshots in {out}")
    finally:
        for proc in reversed(procs):
            stop(proc)
        broker.stop()


if __name__ == "__main__":
    main()
