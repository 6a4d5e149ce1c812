"""Renderer geometry and labels. Run: `.venv/bin/pytest tests/unit/vision/test_render.py`."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from backroom.records import Planogram, PlanogramSlot
from backroom.vision import GAP, PRODUCT
from backroom.vision.render import (
    random_planogram,
    render,
    render_dataset,
    render_frame,
    sku_look,
    to_yolo,
)

W, H = 640, 480


def _two_slot_row() -> Planogram:
    # One shelf row, two adjacent slots of 3 and 2 facings, plus a second row below.
    return Planogram(
        store_id="s1",
        camera_id="c1",
        slots=[
            PlanogramSlot(sku="A", box=[0.05, 0.1, 0.5, 0.4], facings=3),
            PlanogramSlot(sku="B", box=[0.5, 0.1, 0.95, 0.4], facings=2),
            PlanogramSlot(sku="C", box=[0.05, 0.5, 0.95, 0.8], facings=4),
        ],
    )


def test_same_seed_same_frame_and_labels() -> None:
    pg = random_planogram("s", "c", seed=4)
    stock = {s.sku: s.facings // 2 for s in pg.slots}
    a, la = render_frame(pg, stock, seed=11)
    b, lb = render_frame(pg, stock, seed=11)
    c, _ = render_frame(pg, stock, seed=12)
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and la == lb
    assert not np.array_equal(a, c)


def test_full_shelf_has_one_product_per_facing_and_no_gap() -> None:
    pg = _two_slot_row()
    r = render(pg, {"A": 3, "B": 2, "C": 4}, seed=1, occluders=False, skew=False)
    assert [b.cls for b in r.labels].count(GAP) == 0
    assert [b.cls for b in r.labels].count(PRODUCT) == 9
    # Every pack stands inside its slot's opening.
    for b in r.labels:
        assert any(
            s.box[0] * W - 2 <= b.x1 < b.x2 <= s.box[2] * W + 2
            and s.box[1] * H - 1 <= b.y1 < b.y2 <= s.box[3] * H + 1
            for s in pg.slots
        ), b


def test_adjacent_empty_facings_merge_into_one_gap_across_slots() -> None:
    pg = _two_slot_row()
    # Slot A fully empty, slot B fully empty: nothing visible separates them -> one gap box.
    r = render(pg, {"A": 0, "B": 0, "C": 4}, seed=2, occluders=False, skew=False)
    gaps = [b for b in r.labels if b.cls == GAP]
    assert len(gaps) == 1
    g = gaps[0]
    assert g.x1 == pytest.approx(0.05 * W, abs=1) and g.x2 == pytest.approx(0.95 * W, abs=1)
    # Gap boxes span the whole shelf opening.
    assert g.y1 == pytest.approx(0.1 * H, abs=1) and g.y2 == pytest.approx(0.4 * H, abs=1)
    assert [b.cls for b in r.labels].count(PRODUCT) == 4


def test_gap_width_matches_empty_facings() -> None:
    pg = _two_slot_row()
    for seed in range(6):
        r = render(pg, {"A": 3, "B": 2, "C": 1}, seed=seed, occluders=False, skew=False)
        gaps = [b for b in r.labels if b.cls == GAP]
        facing_w = 0.9 * W / 4
        assert sum(g.x2 - g.x1 for g in gaps) == pytest.approx(3 * facing_w, abs=1.5)
        assert all(g.y1 == pytest.approx(0.5 * H, abs=1) for g in gaps)


def test_skewed_labels_stay_in_frame_and_yolo_text_is_normalised() -> None:
    pg = random_planogram("s", "c", seed=9)
    stock = {s.sku: 0 if i % 3 == 0 else s.facings for i, s in enumerate(pg.slots)}
    r = render(pg, stock, seed=5, difficulty=1.2)
    assert any(b.cls == GAP for b in r.labels) and any(b.cls == PRODUCT for b in r.labels)
    for b in r.labels:
        assert 0 <= b.x1 < b.x2 <= W and 0 <= b.y1 < b.y2 <= H
    for line in to_yolo(r.labels, W, H).splitlines():
        cls, *vals = line.split()
        assert cls in ("0", "1")
        assert all(0.0 <= float(v) <= 1.0 for v in vals)


def test_random_planogram_rows_tile_without_overlap() -> None:
    for seed in range(5):
        pg = random_planogram("s", "c", seed=seed)
        assert len({s.sku for s in pg.slots}) == len(pg.slots)
        rows: dict[tuple[float, float], list[list[float]]] = {}
        for s in pg.slots:
            rows.setdefault((s.box[1], s.box[3]), []).append(s.box)
        assert 3 <= len(rows) <= 5
        for boxes in rows.values():
            boxes.sort()
            for a, b in itertools.pairwise(boxes):
                assert a[2] <= b[0] + 1e-6  # no overlap within a row


def test_sku_look_is_stable_and_varied() -> None:
    assert sku_look("P00001") == sku_look("P00001")
    looks = {sku_look(f"P{i:05d}").color for i in range(30)}
    assert len(looks) > 20


def test_render_dataset_layout(tmp_path) -> None:
    counts = render_dataset(tmp_path, n=4, seed=3, size=(320, 240))
    assert counts["train"] == 3 and counts["val"] == 1
    assert len(list((tmp_path / "images" / "train").glob("*.jpg"))) == 3
    assert len(list((tmp_path / "labels" / "val").glob("*.txt"))) == 1
    text = (tmp_path / "data.yaml").read_text()
    assert "0: product" in text and "1: gap" in text


def test_visible_facings_from_quantity() -> None:
    from backroom.vision import visible_facings

    assert visible_facings(0, 4, 6) == 0
    assert visible_facings(1, 4, 6) == 1
    assert visible_facings(6, 4, 6) == 1
    assert visible_facings(7, 4, 6) == 2
    assert visible_facings(100, 4, 6) == 4
    assert visible_facings(-3, 4, 6) == 0
