"""Planogram mapping, per-slot scores and AP, without a model.

Run: `.venv/bin/pytest tests/unit/vision/test_shelf.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backroom.records import Planogram, PlanogramSlot
from backroom.vision import GAP, PRODUCT
from backroom.vision.detector import Detection, letterbox, nms_per_class
from backroom.vision.evaluate import average_precision
from backroom.vision.render import Box
from backroom.vision.shelf import observations, read_slot, slot_gap_scores

W, H = 1000, 500
PG = Planogram(
    store_id="s1",
    camera_id="c1",
    slots=[
        PlanogramSlot(sku="A", box=[0.0, 0.0, 0.4, 0.4], facings=4),  # facing = 100 px
        PlanogramSlot(sku="B", box=[0.4, 0.0, 1.0, 0.4], facings=3),  # facing = 200 px
        PlanogramSlot(sku="C", box=[0.0, 0.5, 1.0, 0.9], facings=5),
    ],
)


def _gap(x0: float, x1: float, y0: float = 0, y1: float = 200, conf: float = 0.9) -> Detection:
    return Detection(GAP, conf, (x0, y0, x1, y1))


def _prod(x0: float, x1: float, y0: float = 40, y1: float = 195) -> Detection:
    return Detection(PRODUCT, 0.8, (x0, y0, x1, y1))


def test_gap_spanning_two_slots_is_split_by_facing_width() -> None:
    # Empty from x=200 to x=600: the last 2 facings of A (100 px each), the first of B (200 px).
    dets = [_gap(200, 600), _prod(10, 90), _prod(110, 190), _prod(620, 780), _prod(820, 980)]
    a = read_slot(PG.slots[0], dets, W, H)
    b = read_slot(PG.slots[1], dets, W, H)
    c = read_slot(PG.slots[2], dets, W, H)
    assert (a.facings_visible, a.fill_ratio) == (2, 0.5)
    assert (b.facings_visible, b.fill_ratio) == (2, pytest.approx(2 / 3, abs=1e-3))
    assert c.facings_visible == 5  # the gap is in another row: no vertical overlap
    assert 0 < a.confidence <= 1


def test_sliver_of_gap_does_not_empty_a_facing() -> None:
    dets = [_gap(370, 420)]  # 30 px into A (less than half a facing), 20 px into B
    assert read_slot(PG.slots[0], dets, W, H).facings_visible == 4
    assert read_slot(PG.slots[1], dets, W, H).facings_visible == 3


def test_fully_empty_slot_and_observation_records() -> None:
    obs = observations(
        PG, [_gap(0, 1000, 250, 450)], W, H, datetime(2026, 11, 27, tzinfo=UTC), "f1", "cam/1.jpg"
    )
    by = {o.sku: o for o in obs}
    assert by["C"].facings_visible == 0 and by["C"].fill_ratio == 0.0
    assert by["C"].boxes and by["C"].boxes[0]["cls"] == "gap"
    assert by["A"].facings_visible == 4 and by["A"].confidence == 0.0  # nothing seen at all
    assert by["C"].frame_uri == "cam/1.jpg" and by["C"].camera_id == "c1"


def test_slot_scores_count_tp_fp_fn() -> None:
    truth = {"A": 2, "B": 3, "C": 5}  # only A has a gap
    s = slot_gap_scores(PG, truth, [_gap(200, 400)], W, H)
    assert (s.tp, s.fp, s.fn, s.tn) == (1, 0, 0, 2) and s.recall == 1.0 and s.precision == 1.0
    s = slot_gap_scores(PG, truth, [_gap(400, 600)], W, H)  # wrong slot
    assert (s.tp, s.fp, s.fn) == (0, 1, 1) and s.recall == 0.0
    s = slot_gap_scores(PG, truth, [], W, H, occluded={"A": 0.9})
    assert s.skipped_occluded == 1 and s.fn == 0


def test_average_precision() -> None:
    gt = [[Box(GAP, 0, 0, 100, 100)], [Box(GAP, 0, 0, 50, 50)]]
    perfect = [[_gap(0, 100, 0, 100)], [_gap(0, 50, 0, 50)]]
    assert average_precision(perfect, gt, GAP) == pytest.approx(1.0, abs=0.01)
    # A confident false positive ranked first halves precision at the start of the curve.
    worse = [[_gap(0, 100, 0, 100, 0.5), _gap(500, 600, 0, 100, 0.99)], [_gap(0, 50, 0, 50, 0.4)]]
    assert 0.5 < average_precision(worse, gt, GAP) < 0.9
    assert average_precision([[], []], gt, GAP) == 0.0
    missed = [[_gap(0, 100, 0, 100)], [_gap(200, 250, 0, 50)]]  # IoU 0 with the second truth
    # Half the truths found at precision 1; the linear tail to recall 1 adds 0.125 (ultralytics
    # interpolates the same way), so 0.625 rather than a step function's 0.5.
    assert average_precision(missed, gt, GAP) == pytest.approx(0.625, abs=0.01)


def test_letterbox_and_nms() -> None:
    import numpy as np

    img = np.zeros((480, 640, 3), np.uint8)
    out, r, (left, top) = letterbox(img, 320)
    assert out.shape == (320, 320, 3) and r == 0.5 and (left, top) == (0, 40)
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    keep = nms_per_class(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 1]), 0.5, 10)
    assert sorted(keep.tolist()) == [0, 2]  # same-class overlap suppressed, other class kept
