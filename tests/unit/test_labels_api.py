"""`/api/labels` without a broker: saving a frame's corrections, auth, Origin, and 4xx answers.

    pytest tests/unit/test_labels_api.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from backroom.settings import Settings
from backroom.vision.labels import read_yolo_labels
from dashboard.server import create_app

BASE = "http://127.0.0.1:8000"
JSON = {"content-type": "application/json"}
BOXES = [
    {"cls": "product", "conf": 0.9, "box": [20.0, 40.0, 100.0, 180.0]},
    {"cls": "gap", "conf": 0.8, "box": [120.0, 40.0, 200.0, 180.0]},
]


def observation(sku: str, boxes: list[dict[str, Any]], frame: str = "fr-1", uri: str = "S1/cam1/f1.jpg") -> dict[str, Any]:
    return {"ts": "2026-11-27T09:00:00Z", "store_id": "S1", "sku": sku, "camera_id": "cam1",
            "frame_event_id": frame, "facings_expected": 3, "facings_visible": 2, "fill_ratio": 0.67,
            "confidence": 0.8, "boxes": boxes, "frame_uri": uri}


@pytest.fixture
def make(settings_factory: Callable[..., Settings], tmp_path: Path) -> Callable[..., tuple[Any, httpx.AsyncClient]]:
    frames = tmp_path / "frames"
    (frames / "S1" / "cam1").mkdir(parents=True)
    cv2.imwrite(str(frames / "S1" / "cam1" / "f1.jpg"), np.full((200, 400, 3), 170, np.uint8))
    cv2.imwrite(str(tmp_path / "outside.jpg"), np.full((200, 400, 3), 170, np.uint8))

    def build(**overrides: Any) -> tuple[Any, httpx.AsyncClient]:
        app = create_app(settings_factory(frame_root=frames, **overrides), kafka=False)
        view = app.state.view
        view.apply_alert({"alert_id": "al-1", "ts": "2026-11-27T09:10:00Z", "store_id": "S1", "sku": "A",
                          "type": "PHANTOM_STOCK", "status": "open", "severity": "medium", "message": "m",
                          "action": "recount", "evidence": {"observation": observation("A", BOXES)}})
        # Another slot (SKU B) of the same frame: its product box belongs in the example too.
        view.apply_observation(observation("B", [{"cls": "product", "conf": 0.7, "box": [300.0, 40.0, 380.0, 180.0]}]))
        view.apply_alert({"alert_id": "al-out", "ts": "2026-11-27T09:10:00Z", "store_id": "S1", "sku": "C",
                          "type": "PHANTOM_STOCK", "status": "open", "severity": "medium", "message": "m",
                          "action": "recount", "evidence": {"observation": observation(
                              "C", BOXES, "fr-9", str(tmp_path / "outside.jpg"))}})
        return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)

    return build


async def test_save_writes_the_example_and_get_lists_it(make: Any) -> None:
    app, c = make()
    assert (await c.get("/api/labels")).json()["count"] == 0
    body = {"alert_id": "al-1", "frame_event_id": "fr-1", "wrong": [[120, 40, 200, 180]],
            "drawn": [[0.5, 0.25, 0.7, 0.75]], "units": "norm"}
    r = await c.post("/api/labels", json=body, headers={"origin": BASE})
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["saved"] is True and saved["frame_event_id"] == "fr-1" and saved["alert_id"] == "al-1"
    assert saved["labelled_ts"].startswith("2026-11-27T09:10:00")  # event time, not the wall clock
    root = app.state.settings.data_dir / "labels"
    lines = read_yolo_labels(root / "labels" / saved["label"])
    # SKU A's product, SKU B's product (same frame), the drawn gap; the wrong gap is dropped.
    assert sorted(lines) == [(0, 0.15, 0.55, 0.2, 0.7), (0, 0.85, 0.55, 0.2, 0.7), (1, 0.6, 0.5, 0.2, 0.5)]
    assert (root / "images" / saved["image"]).is_file()
    listed = (await c.get("/api/labels")).json()
    assert listed["count"] == 1 and listed["boxes"] == {"product": 2, "gap": 1}
    assert listed["recent"][0]["id"] == saved["id"]
    # By store and SKU (the latest observation) the same frame is replaced, not duplicated.
    r = await c.post("/api/labels", json={"store_id": "S1", "sku": "B", "frame_event_id": "fr-1"})
    assert r.status_code == 201 and r.json()["id"] == saved["id"]
    assert (await c.get("/api/labels")).json()["count"] == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"alert_id": "nope", "frame_event_id": "fr-1"}, 404, "no alert"),
        ({"frame_event_id": "fr-1"}, 422, "alert_id, or store_id and sku"),
        ({"alert_id": "al-1", "frame_event_id": "fr-0"}, 409, "reopen"),
        ({"alert_id": "al-1", "frame_event_id": "fr-1", "wrong": [[20, 40, 100, 180]]}, 422, "gap boxes"),
        ({"alert_id": "al-1", "frame_event_id": "fr-1", "drawn": [[390, 10, 480, 50]]}, 422, "outside"),
        ({"alert_id": "al-1", "frame_event_id": "fr-1", "drawn": [[10, 10, 10.5, 50]]}, 422, "degenerate"),
        ({"alert_id": "al-1", "frame_event_id": "fr-1", "drawn": [[1, 2, 3, 4]] * 51}, 422, "drawn"),
        ({"alert_id": "al-1", "frame_event_id": "fr-1", "units": "cm"}, 422, "units"),
        ({"alert_id": "al-1", "frame_event_id": "fr-1", "extra": 1}, 422, "extra"),
        ({"alert_id": "al-out", "frame_event_id": "fr-9"}, 400, "outside the frame root"),
        ({"store_id": "S9", "sku": "Z", "frame_event_id": "fr-1"}, 404, "no camera frame"),
        ([1, 2], 422, "body"),
    ],
)
async def test_bad_bodies_get_4xx_with_a_message(make: Any, body: Any, status: int, message: str) -> None:
    _, c = make()
    r = await c.post("/api/labels", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert (await c.get("/api/labels")).json()["count"] == 0


async def test_body_type_and_size_limits(make: Any) -> None:
    _, c = make()
    r = await c.post("/api/labels", content=b'{"alert_id": "al-1"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = await c.post("/api/labels", content=b"{" + b" " * 70_000 + b"}", headers=JSON)
    assert r.status_code == 413 and "larger" in r.json()["detail"]
    r = await c.post("/api/labels", content=b"{not json", headers=JSON)
    assert r.status_code == 422 and r.json()["detail"]


async def test_auth_and_origin_checks_cover_the_labels_routes(make: Any) -> None:
    _, c = make()
    body = {"alert_id": "al-1", "frame_event_id": "fr-1"}
    r = await c.post("/api/labels", json=body, headers={"origin": "http://evil.test"})
    assert r.status_code == 403
    assert (await c.get("/api/labels", headers={"host": "evil.test"})).status_code == 403
    _, c = make(dashboard_token="s3cret")
    assert (await c.get("/api/labels")).status_code == 401
    assert (await c.post("/api/labels", json=body)).status_code == 401
    auth = {"authorization": "Bearer s3cret"}
    assert (await c.post("/api/labels", json=body, headers=auth)).status_code == 201
    assert (await c.get("/api/labels", headers=auth)).json()["count"] == 1
