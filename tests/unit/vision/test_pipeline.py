"""VisionPipeline with a stand-in detector: batching, bad frames, missing planograms.

Run: `.venv/bin/pytest tests/unit/vision/test_pipeline.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from backroom.records import CameraFrame, InvalidEvent, Planogram, PlanogramSlot, ShelfObservation
from backroom.settings import Settings
from backroom.vision import GAP
from backroom.vision.detector import Detection
from backroom.vision.pipeline import VisionPipeline

PG = Planogram(
    store_id="s1",
    camera_id="c1",
    slots=[
        PlanogramSlot(sku="A", box=[0.0, 0.0, 0.5, 0.5], facings=2),
        PlanogramSlot(sku="B", box=[0.5, 0.0, 1.0, 0.5], facings=2),
    ],
)


class FakeDetector:
    """Reports a gap over the right half of the top row of every frame."""

    imgsz = 320

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        self.calls.append(len(images))
        out = []
        for im in images:
            h, w = im.shape[:2]
            out.append([Detection(GAP, 0.9, (w * 0.5, 0, w * 1.0, h * 0.5))])
        return out


def _frame(uri: str, i: int, camera: str = "c1") -> CameraFrame:
    return CameraFrame(
        event_id=f"e{i}",
        ts=datetime(2026, 11, 27, 9, tzinfo=UTC),
        store_id="s1",
        camera_id=camera,
        frame_uri=uri,
    )


def test_batch_with_bad_frames(tmp_path: Path) -> None:
    root = tmp_path / "frames"
    root.mkdir()
    cv2.imwrite(str(root / "a.jpg"), np.full((120, 160, 3), 90, np.uint8))
    cv2.imwrite(str(root / "b.jpg"), np.full((240, 320, 3), 90, np.uint8))
    (root / "bad.jpg").write_bytes(b"not an image")
    det = FakeDetector()
    pipe = VisionPipeline(Settings(frame_root=root), detector=det)
    frames = [
        _frame("a.jpg", 1),
        _frame("http://x/y.jpg", 2),
        _frame("bad.jpg", 3),
        _frame("b.jpg", 4),
        _frame("a.jpg", 5, camera="unknown"),
    ]
    res = pipe.process(frames, {"s1:c1": PG})
    assert det.calls == [2]  # the two good frames went through in one batch
    assert isinstance(res[1], InvalidEvent) and "scheme" in res[1].reason
    assert isinstance(res[2], InvalidEvent) and "not an image" in res[2].reason
    assert isinstance(res[4], InvalidEvent) and "planogram" in res[4].reason
    for r, fr in ((res[0], frames[0]), (res[3], frames[3])):
        assert isinstance(r, list) and all(isinstance(o, ShelfObservation) for o in r)
        by = {o.sku: o for o in r}
        assert by["A"].facings_visible == 2 and by["B"].facings_visible == 0
        assert by["B"].frame_event_id == fr.event_id and by["B"].frame_uri == fr.frame_uri
        assert by["B"].boxes[0]["cls"] == "gap"


def test_empty_batch_calls_nothing(tmp_path: Path) -> None:
    det = FakeDetector()
    pipe = VisionPipeline(Settings(frame_root=tmp_path), detector=det)
    assert pipe.process([], {}) == []
    assert det.calls == []
