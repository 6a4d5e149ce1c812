"""Appearance-cue gaps (backroom/vision/gapcues.py) on hand-made shelf images.

Run: `pytest -q tests/unit/vision/test_gapcues.py` (well under a second)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from backroom.records import CameraFrame, Planogram, PlanogramSlot
from backroom.settings import Settings
from backroom.vision import GAP, PRODUCT
from backroom.vision.detector import Detection
from backroom.vision.gapcues import cue_gaps, with_cue_gaps
from backroom.vision.pipeline import VisionPipeline

W, H, PW, STEP, Y1, Y2 = 640, 480, 50, 56, 120, 260


def shelf(hole: range | None) -> tuple[np.ndarray, list[Detection]]:
    """A light grey back panel with one row of textured, coloured packs; the packs whose index
    is in `hole` are missing and their place is a flat dark recess. Returns the image and the
    product boxes a detector would give for the packs present."""
    rng = np.random.default_rng(3)
    img = np.full((H, W, 3), 170, np.uint8)
    img[Y2 : Y2 + 12] = 120  # shelf board
    dets = []
    for k in range(11):
        x1 = 12 + k * STEP
        if hole is not None and k in hole:
            img[Y1:Y2, x1 : x1 + STEP] = 45  # the dark, flat recess of an empty facing
            continue
        colour = rng.integers(40, 255, 3)
        pack = np.clip(colour + rng.normal(0, 40, (Y2 - Y1, PW, 3)), 0, 255)
        pack[20:30] = 255 - colour  # a label band: strong edges, as printed packs have
        img[Y1:Y2, x1 : x1 + PW] = pack.astype(np.uint8)
        dets.append(Detection(PRODUCT, 0.8, (float(x1), float(Y1), float(x1 + PW), float(Y2))))
    return img, dets


def test_flat_dark_hole_between_packs_is_one_gap() -> None:
    img, dets = shelf(range(4, 7))
    gaps = cue_gaps(img, dets)
    assert len(gaps) == 1
    x1, y1, x2, y2 = gaps[0].box
    hole = (12 + 4 * STEP, 12 + 7 * STEP)
    # the box covers the hole and little else: within half a pack on each side
    assert abs(x1 - hole[0]) < PW / 2 and abs(x2 - hole[1]) < PW / 2
    assert (y1, y2) == (Y1, Y2)
    assert gaps[0].cls == GAP and 0.25 <= gaps[0].conf <= 1


def test_fully_stocked_row_has_no_gap() -> None:
    img, dets = shelf(None)
    assert cue_gaps(img, dets) == []


def test_a_detector_gap_over_the_hole_wins() -> None:
    img, dets = shelf(range(4, 7))
    det_gap = Detection(GAP, 0.9, (12 + 4 * STEP, Y1, 12 + 7 * STEP, Y2))
    out = with_cue_gaps(img, [*dets, det_gap])
    assert [d for d in out if d.cls == GAP] == [det_gap]


def test_too_few_products_gives_nothing() -> None:
    img, dets = shelf(range(4, 7))
    assert cue_gaps(img, dets[:1]) == []


class ProductsOnly:
    """A stand-in detector that finds the packs of `shelf()` and no gap."""

    imgsz = 320

    def __init__(self, dets: list[Detection]) -> None:
        self.dets = dets

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [list(self.dets) for _ in images]


def test_pipeline_counts_a_cue_gap_as_empty_facings(tmp_path: Path) -> None:
    img, dets = shelf(range(4, 7))
    cv2.imwrite(str(tmp_path / "f.png"), img)
    x_hole = (12 + 4 * STEP) / W, (12 + 7 * STEP) / W
    pg = Planogram(
        store_id="s1",
        camera_id="c1",
        slots=[
            PlanogramSlot(sku="A", box=[12 / W, Y1 / H, x_hole[0], Y2 / H], facings=4),
            PlanogramSlot(sku="B", box=[x_hole[0], Y1 / H, x_hole[1], Y2 / H], facings=3),
        ],
    )
    frame = CameraFrame(
        event_id="e1",
        ts=datetime(2026, 11, 27, 9, tzinfo=UTC),
        store_id="s1",
        camera_id="c1",
        frame_uri="f.png",
    )
    seen = {}
    for on in (True, False):
        pipe = VisionPipeline(
            Settings(frame_root=tmp_path, gap_cues=on), detector=ProductsOnly(dets)
        )
        [res] = pipe.process([frame], {"s1:c1": pg})
        assert isinstance(res, list)
        seen[on] = {o.sku: o.facings_visible for o in res}
    assert seen[True] == {"A": 4, "B": 0}  # the flat dark recess reads as three empty facings
    assert seen[False]["B"] == 3  # without the cues nothing says B is empty
