"""The dashboard in headless Chromium, fed through the real Kafka broker.

    pytest tests/browser -m browser          # needs /usr/bin/chromium and the playwright package

What a person sees: the page loads without console errors or outside requests; events produced
to Kafka become alerts on the page within seconds (through `backroom worker`); heatmap and SKU
table follow the stream; an alert opens its evidence (camera frame with boxes, forecast band);
acknowledge works from the page; the page reconnects by itself after a server restart.
Screenshot: test-artifacts/dashboard.png.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from backroom.settings import Settings
from streams.topics import ensure_topics
from tests.browser.conftest import ARTIFACTS, run_async
from tests.factories import catalog_entry, key, sale, scan, ts
from tests.helpers import produce

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ALERT = "#alerts li.alert[data-sku='{sku}'][data-type='{type}']"


def wait_attr(page: Any, selector: str, attr: str, value: str, timeout_s: float = 10) -> None:
    # Locator assertions, not wait_for_function: the page's CSP forbids eval, rightly.
    from playwright.sync_api import expect

    expect(page.locator(selector).first).to_have_attribute(attr, value, timeout=timeout_s * 1000)


def test_kafka_events_become_alerts_heatmap_and_table(kafka_settings: Settings, worker_factory: Any,
                                                      dashboard_factory: Any, page: Any) -> None:
    run_async(ensure_topics(kafka_settings))
    worker = worker_factory(kafka_settings)
    dash = dashboard_factory(kafka_settings)
    page.goto(dash.url)
    wait_attr(page, "#conn", "data-state", "live")

    events: list[tuple[str, str | None, Any]] = [
        ("catalog.skus", "*:A", catalog_entry("A", shelf_capacity=20, min_shelf_qty=5)),
    ]
    for ev in [scan("receive", 30, minutes=0), scan("move_to_shelf", 20, minutes=1)]:
        events.append(("backroom.scans", key(ev), ev))
    for m in range(16):
        ev = sale(qty=1, minutes=10 + m)
        events.append(("pos.sales", key(ev), ev))
    b_count, b_sale = scan("count", 2, sku="B", location="shelf"), sale(sku="B", qty=2, minutes=5)
    events += [("backroom.scans", key(b_count), b_count), ("pos.sales", key(b_sale), b_sale)]
    run_async(produce(kafka_settings, events))

    # The first alerts include the worker's start-up; later ones must be quick.
    page.wait_for_selector(ALERT.format(sku="B", type="OUT_OF_STOCK"), timeout=60_000)
    page.wait_for_selector(ALERT.format(sku="A", type="RESTOCK_SHELF"), timeout=20_000)
    c_count, c_sale = scan("count", 1, sku="C", location="shelf", minutes=30), sale(sku="C", minutes=31)
    started = time.monotonic()
    run_async(produce(kafka_settings, [("backroom.scans", key(c_count), c_count),
                                         ("pos.sales", key(c_sale), c_sale)]))
    try:
        page.wait_for_selector(ALERT.format(sku="C", type="OUT_OF_STOCK"), timeout=10_000)
    except Exception:
        import urllib.request
        with urllib.request.urlopen(dash.url + "api/alerts?status=all") as r:
            print("DASH ALERTS", r.read()[:3000])
        with urllib.request.urlopen(dash.url + "api/status") as r:
            print("DASH STATUS", r.read()[:3000])
        print("WORKER", worker.log())
        raise
    seen_after = time.monotonic() - started

    # Heatmap: store S1, category Snacks from the catalog; B and C have none (flagged, defaults).
    cell = page.locator("#heatmap td.cell[data-store='S1'][data-category='Snacks']")
    assert cell.get_attribute("data-availability") == "1.000"
    assert page.locator("#heatmap td.cell[data-store='S1'][data-category='uncategorised']").count() == 1
    assert page.locator("#event-time").inner_text().startswith("2026-11-27 09:31")

    # Drill into the store: the SKU table, sortable.
    cell.click()
    page.wait_for_selector("#sku-table tbody tr[data-sku='A']")
    assert page.locator("#sku-table tbody tr[data-sku='A']").get_attribute("data-shelf") == "4"
    page.click("#sku-table th[data-key='sku']")
    skus = page.locator("#sku-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.sku)")
    assert skus == sorted(skus) and set(skus) == {"A"}  # the Snacks filter from the clicked cell
    page.select_option("#cat-filter", "")
    expect(page.locator("#sku-table tbody tr")).to_have_count(3)

    # Restocking the shelf updates the table and resolves the RESTOCK_SHELF alert on the page.
    move = scan("move_to_shelf", 10, minutes=40)
    run_async(produce(kafka_settings, [("backroom.scans", key(move), move)]))
    wait_attr(page, "#sku-table tbody tr[data-sku='A']", "data-shelf", "14")
    page.wait_for_selector(ALERT.format(sku="A", type="RESTOCK_SHELF"), state="detached", timeout=10_000)

    # Acknowledge from the page.
    oos = page.locator(ALERT.format(sku="B", type="OUT_OF_STOCK"))
    oos.locator("button.ack").click()
    page.wait_for_selector(ALERT.format(sku="B", type="OUT_OF_STOCK") + ".acked")

    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert page.errors == [], page.errors
    assert page.outside_requests == [], page.outside_requests
    assert seen_after < 10, f"alert took {seen_after:.1f}s to show"


def shelf_png(path: Path) -> list[dict[str, Any]]:
    """A small shelf picture with two products and one gap; returns its detection boxes."""
    img = np.full((240, 400, 3), 200, np.uint8)
    cv2.rectangle(img, (20, 60), (110, 200), (40, 90, 200), -1)
    cv2.rectangle(img, (130, 60), (220, 200), (40, 90, 200), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return [
        {"cls": "product", "conf": 0.91, "box": [20, 60, 110, 200]},
        {"cls": "product", "conf": 0.88, "box": [130, 60, 220, 200]},
        {"cls": "gap", "conf": 0.77, "box": [240, 60, 380, 200]},
    ]


def state(sku: str, shelf: int, version: int, minutes: float, category: str = "Dairy") -> dict[str, Any]:
    return {"ts": ts(minutes), "store_id": "S2", "sku": sku, "shelf_qty": shelf, "backroom_qty": 12,
            "shelf_capacity": 20, "min_shelf_qty": 4, "demand_per_hour": 1.2, "category": category,
            "version": version}


def test_evidence_frame_forecast_and_reconnect(kafka_settings: Settings, dashboard_factory: Any,
                                               page: Any) -> None:
    """Records produced straight to inventory.state and alerts (no worker needed for this)."""
    run_async(ensure_topics(kafka_settings))
    boxes = shelf_png(kafka_settings.frames_dir / "S2" / "cam1" / "f1.png")
    forecast = {"start": ts(0), "step_hours": 1, "mean": [1 + (h % 24) / 12 for h in range(48)],
                "lower": [0.5] * 48, "upper": [3.0] * 48}
    alert = {
        "alert_id": "ev-1", "ts": ts(10), "store_id": "S2", "sku": "M", "type": "PHANTOM_STOCK",
        "status": "open", "severity": "medium", "message": "Phantom stock? Records say 6, camera sees a gap",
        "action": "recount M on the shelf", "evidence": {
            "shelf_qty": 6, "consecutive_gap_frames": 3, "forecast": forecast,
            "observation": {"frame_uri": "S2/cam1/f1.png", "boxes": boxes, "camera_id": "cam1",
                            "facings_expected": 3, "facings_visible": 2, "fill_ratio": 0.67}},
    }
    run_async(produce(kafka_settings, [
        ("inventory.state", "S2:M", state("M", 6, 1, 0)), ("inventory.state", "S2:N", state("N", 9, 1, 25)),
        ("alerts", "S2:M", alert),
    ]))
    dash = dashboard_factory(kafka_settings)
    page.goto(dash.url)
    page.wait_for_selector("#alerts li.alert[data-alert-id='ev-1']")
    assert page.locator("#alerts li.alert[data-alert-id='ev-1'] .age").inner_text() == "15m"
    page.click("#alerts li.alert[data-alert-id='ev-1']")
    wait_attr(page, "#ev-frame", "data-boxes", "3")
    assert page.locator("#ev-frame").is_visible()
    assert page.locator("#ev-forecast").get_attribute("data-points") == "48"
    assert page.locator("#ev-forecast path.band").count() == 1
    page.screenshot(path=str(ARTIFACTS / "dashboard-evidence.png"))
    page.click("#ev-close")
    assert page.errors == [], page.errors

    # Heatmap follows a state change: N empties, S2/Dairy availability drops to 50 %.
    cell = "#heatmap td.cell[data-store='S2'][data-category='Dairy']"
    assert page.locator(cell).get_attribute("data-availability") == "1.000"
    run_async(produce(kafka_settings, [("inventory.state", "S2:N", state("N", 0, 2, 20))]))
    wait_attr(page, cell, "data-availability", "0.500")

    # Restart the server: the page notices, reconnects by itself and gets a fresh snapshot.
    dash.stop()
    wait_attr(page, "#conn", "data-state", "reconnecting")
    run_async(produce(kafka_settings, [("inventory.state", "S2:M", state("M", 0, 2, 30))]))
    dash.start()
    wait_attr(page, "#conn", "data-state", "live", timeout_s=20)
    page.click("#heatmap th.store-link:text('S2')")
    wait_attr(page, "#sku-table tbody tr[data-sku='M']", "data-shelf", "0")
    wait_attr(page, cell, "data-availability", "0.000")
    assert page.outside_requests == []


def test_false_alarm_button_records_feedback_on_the_topic(kafka_settings: Settings, dashboard_factory: Any,
                                                          page: Any) -> None:
    """The new alert types through the real broker to the page, ordered by expected lost sales;
    one tap on "false alarm" puts an AlertFeedback on `alerts.feedback` (read back from the broker)."""
    from tests.helpers import consume_until

    run_async(ensure_topics(kafka_settings))
    check = {
        "alert_id": "cs-1", "ts": ts(10), "store_id": "S3", "sku": "Q", "type": "CHECK_SHELF",
        "status": "open", "severity": "medium", "message": "No sale of Q for 3.1 h", "action": "check the shelf of Q",
        "evidence": {"p_no_sale": 0.00008, "expected_lost": {"units": 4.0, "value": 8.0, "hours": 2.0}},
    }
    transfer = {
        "alert_id": "tr-1", "ts": ts(11), "store_id": "S3", "sku": "R", "type": "TRANSFER",
        "status": "open", "severity": "high", "message": "Transfer R from S4", "action": "transfer 6 units of R from S4",
        "evidence": {"expected_lost": {"units": 9.0, "value": 27.0, "hours": 20.0}},
    }
    run_async(produce(kafka_settings, [("alerts", "S3:Q", check), ("alerts", "S3:R", transfer)]))
    dash = dashboard_factory(kafka_settings)
    page.goto(dash.url)
    page.wait_for_selector("#alerts li.alert[data-alert-id='cs-1']")
    # Most costly first: the transfer (27.0) above the check (8.0), whatever their severity.
    assert page.locator("#alerts li.alert").first.get_attribute("data-alert-id") == "tr-1"
    assert "units lost" in page.locator("#alerts li.alert[data-alert-id='cs-1'] .lost").inner_text()
    page.click("#alerts li.alert[data-alert-id='cs-1'] button.false-alarm")
    wait_attr(page, "#alerts li.alert[data-alert-id='cs-1']", "data-false-alarm", "1")
    assert page.locator("#alerts li.alert[data-alert-id='cs-1'] button.false-alarm").count() == 0
    got = run_async(consume_until(kafka_settings, "alerts.feedback", lambda r: len(r) >= 1, timeout_s=30))
    assert [(r["alert_id"], r["alert_type"], r["verdict"], r["source"]) for r in got] == [
        ("cs-1", "CHECK_SHELF", "false_alarm", "dashboard")]
    assert page.errors == [], page.errors
    assert page.outside_requests == []
