"""Labels from the floor in headless Chromium: mark a gap wrong, draw a missed gap, save.

    pytest tests/browser/test_labels_browser.py -m browser

An alert whose evidence carries a camera frame and its detection boxes goes through the real
broker to `backroom dashboard`; another slot's observation of the same frame arrives on
`shelf.observations`. In the evidence panel the test clicks the detector's gap box on the
canvas (it turns "wrong"), drags out a gap the detector missed, presses "Save labels", and then
reads the YOLO example the server wrote under `<data_dir>/labels`.
Screenshot: test-artifacts/dashboard-labels.png.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect

from backroom.settings import Settings
from backroom.vision.labels import read_yolo_labels
from streams.topics import ensure_topics
from tests.browser.conftest import ARTIFACTS, run_async
from tests.factories import ts
from tests.helpers import produce

pytestmark = [pytest.mark.browser, pytest.mark.integration]

W, H = 400, 240
WRONG_GAP = [240.0, 60.0, 380.0, 200.0]  # the detector calls this a gap; it is a product
MISSED = (130, 60, 220, 200)  # a real gap the detector did not see


def frame(path: Path) -> None:
    img = np.full((H, W, 3), 200, np.uint8)
    cv2.rectangle(img, (20, 60), (110, 200), (40, 90, 200), -1)
    cv2.rectangle(img, (240, 60), (380, 200), (60, 140, 40), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def observation(sku: str, boxes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ts": ts(5), "store_id": "S3", "sku": sku, "camera_id": "cam2", "frame_event_id": "fr-77",
            "facings_expected": 2, "facings_visible": 1, "fill_ratio": 0.5, "confidence": 0.8,
            "boxes": boxes, "frame_uri": "S3/cam2/f77.jpg"}


def test_mark_wrong_draw_missed_gap_and_save(kafka_settings: Settings, dashboard_factory: Any,
                                            page: Any) -> None:
    run_async(ensure_topics(kafka_settings))
    frame(kafka_settings.frames_dir / "S3" / "cam2" / "f77.jpg")
    obs_m = observation("M", [{"cls": "product", "conf": 0.93, "box": [20.0, 60.0, 110.0, 200.0]},
                              {"cls": "gap", "conf": 0.41, "box": WRONG_GAP}])
    # SKU N's slot of the same frame: its product belongs in the saved example as well.
    obs_n = observation("N", [{"cls": "product", "conf": 0.9, "box": [240.0, 60.0, 380.0, 200.0]}])
    alert = {"alert_id": "lab-1", "ts": ts(6), "store_id": "S3", "sku": "M", "type": "PHANTOM_STOCK",
             "status": "open", "severity": "medium", "message": "camera sees a gap", "action": "recount M",
             "evidence": {"shelf_qty": 4, "observation": obs_m}}
    run_async(produce(kafka_settings, [("shelf.observations", "S3:N", obs_n), ("alerts", "S3:M", alert)]))
    dash = dashboard_factory(kafka_settings)
    page.goto(dash.url)
    page.wait_for_selector("#alerts li.alert[data-alert-id='lab-1']")
    page.click("#alerts li.alert[data-alert-id='lab-1']")
    canvas = page.locator("#ev-frame")
    expect(canvas).to_have_attribute("data-boxes", "3", timeout=10_000)  # M's two and N's product
    expect(page.locator("#ev-label")).to_be_visible()
    gap_button = page.locator("#ev-label-boxes button.gap-box")
    expect(gap_button).to_have_count(1)
    expect(gap_button).to_have_attribute("aria-pressed", "false")

    bb = canvas.bounding_box()
    assert bb is not None
    sx, sy = bb["width"] / W, bb["height"] / H

    def at(x: float, y: float) -> tuple[float, float]:
        return bb["x"] + x * sx, bb["y"] + y * sy

    # A click on the detector's gap box marks it wrong; the button says so too (and toggles).
    page.mouse.click(*at(300, 150))
    expect(gap_button).to_have_attribute("aria-pressed", "true")
    gap_button.click()
    expect(gap_button).to_have_attribute("aria-pressed", "false")
    gap_button.click()
    expect(gap_button).to_have_attribute("aria-pressed", "true")

    # Drag out the missed gap.
    page.mouse.move(*at(MISSED[0], MISSED[1]))
    page.mouse.down()
    page.mouse.move(*at(175, 130), steps=4)
    page.mouse.move(*at(MISSED[2], MISSED[3]), steps=4)
    page.mouse.up()
    expect(page.locator("#ev-label-boxes")).to_have_attribute("data-drawn", "1")
    page.screenshot(path=str(ARTIFACTS / "dashboard-labels.png"))

    page.click("#ev-label-save")
    expect(page.locator("#ev-label")).to_have_attribute("data-saved", "true", timeout=10_000)
    expect(page.locator("#ev-label-status")).to_contain_text("saved: 2 product and 1 gap boxes")

    # On disk: one YOLO example with both products and the drawn gap, the wrong gap dropped.
    root = kafka_settings.data_dir / "labels"
    [meta_path] = list((root / "meta").glob("*.json"))
    meta = json.loads(meta_path.read_text())
    assert meta["alert_id"] == "lab-1" and meta["frame_event_id"] == "fr-77"
    assert (meta["store_id"], meta["camera_id"], meta["sku"]) == ("S3", "cam2", "M")
    assert meta["changes"]["wrong_gaps"] == [WRONG_GAP]
    [drawn] = meta["changes"]["drawn_gaps"]
    assert all(abs(a - b) <= 1.5 for a, b in zip(drawn, MISSED, strict=True)), drawn
    assert (root / "images" / meta["image"]).read_bytes() == (
        kafka_settings.frames_dir / "S3" / "cam2" / "f77.jpg"
    ).read_bytes()
    lines = read_yolo_labels(root / "labels" / meta["label"])
    products = sorted(tuple(round(v, 4) for v in line[1:]) for line in lines if line[0] == 0)
    assert products == [(0.1625, 0.5417, 0.225, 0.5833), (0.775, 0.5417, 0.35, 0.5833)]
    [gap] = [line for line in lines if line[0] == 1]
    cx, cy, w, h = gap[1:]
    assert abs(cx * W - 175) <= 1.5 and abs(cy * H - 130) <= 1.5
    assert abs(w * W - 90) <= 2 and abs(h * H - 140) <= 2
    with urllib.request.urlopen(dash.url + "api/labels") as r:
        listed = json.loads(r.read())
    assert listed["count"] == 1 and listed["recent"][0]["id"] == meta["id"]

    # Saving again replaces the frame's example; a further change marks the panel unsaved.
    page.mouse.click(*at(175, 130))  # a click on the drawn gap removes it
    expect(page.locator("#ev-label-boxes")).to_have_attribute("data-drawn", "0")
    expect(page.locator("#ev-label")).to_have_attribute("data-saved", "")
    page.click("#ev-label-save")
    expect(page.locator("#ev-label")).to_have_attribute("data-saved", "true", timeout=10_000)
    assert len(list((root / "labels").iterdir())) == 1
    assert [line[0] for line in read_yolo_labels(root / "labels" / meta["label"])] == [0, 0]
    assert page.errors == [], page.errors
    assert page.outside_requests == [], page.outside_requests
