"""YOLO label import (boxes, polygons, data.yaml class names, layouts) and the real-photo metric.

Run: `.venv/bin/pytest tests/unit/vision/test_yolo_data.py` (hand-made folders, < 2 s).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from backroom.vision import GAP, PRODUCT
from backroom.vision.detector import Detection
from backroom.vision.evaluate import eval_labelled, match_boxes
from backroom.vision.render import Box
from backroom.vision.yolo_data import (
    DatasetError,
    class_map,
    load_dataset,
    map_class_name,
    parse_label_line,
    split_items,
    write_yolo,
)


def _img(path: Path, w: int = 200, h: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))


def _lab(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_box_and_polygon_lines_become_pixel_boxes() -> None:
    assert parse_label_line("1 0.5 0.5 0.2 0.4", 200, 100) == (1, (80.0, 30.0, 120.0, 70.0))
    # polygon: its bounding box
    cid, box = parse_label_line("0 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6", 200, 100) or (None, None)
    assert cid == 0 and box == pytest.approx((20.0, 20.0, 60.0, 60.0))
    assert parse_label_line("   ", 10, 10) is None
    with pytest.raises(DatasetError):
        parse_label_line("0 0.1 0.2 0.3", 10, 10)
    with pytest.raises(DatasetError):
        parse_label_line("gap 0.1 0.2 0.3 0.4", 10, 10)


def test_class_names_map_to_product_and_gap() -> None:
    for n in ("empty", "Empty-Space", "void", "gap", "out_of_stock", "Out of stock", "OOS"):
        assert map_class_name(n) == GAP, n
    for n in ("product", "item", "SKU", "object"):
        assert map_class_name(n) == PRODUCT, n
    assert map_class_name("price_tag") is None
    assert class_map(["empty_shelf"]) == {0: GAP}
    assert class_map(["MosquitoRepellent"]) == {0: GAP}  # single class: empty space
    with pytest.warns(UserWarning, match="price"):
        assert class_map(["product", "price", "void"]) == {0: PRODUCT, 2: GAP}
    assert class_map(None) == {0: PRODUCT, 1: GAP}


def test_flat_folder_without_yaml_uses_backroom_ids(tmp_path: Path) -> None:
    _img(tmp_path / "images" / "a.jpg")
    _img(tmp_path / "images" / "b.png")  # no label file: a negative image
    _lab(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.1 0.1\n1 0.25 0.5 0.5 1.0\n")
    ds = load_dataset(tmp_path)
    assert [it.image.name for it in ds.items] == ["a.jpg", "b.png"]
    a, b = ds.items
    assert (a.width, a.height) == (200, 100)
    assert [x.cls for x in a.boxes] == [PRODUCT, GAP]
    assert a.boxes[1].xyxy == pytest.approx((0.0, 0.0, 100.0, 100.0))
    assert b.boxes == []
    # --names overrides: a single-class empty-space set labelled 0
    with pytest.warns(UserWarning, match="dropped"):
        ds2 = load_dataset(tmp_path, names=["empty"])
    assert [x.cls for x in ds2.items[0].boxes] == [GAP]
    assert ds2.dropped == {"1": 1}


def test_roboflow_yaml_with_split_folders_and_polygons(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\nnc: 3\nnames: ['Product', 'tag', 'Void']\n"
    )
    _img(tmp_path / "train" / "images" / "t.jpg")
    _lab(
        tmp_path / "train" / "labels" / "t.txt",
        "2 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5\n1 .5 .5 .1 .1\n",
    )
    _img(tmp_path / "valid" / "images" / "v.jpg")
    _lab(tmp_path / "valid" / "labels" / "v.txt", "0 0.5 0.5 0.2 0.2\n")
    with pytest.warns(UserWarning):
        ds = load_dataset(tmp_path)
    assert ds.names == ["Product", "tag", "Void"]
    t = next(it for it in ds.items if it.image.name == "t.jpg")
    assert [(b.cls, b.xyxy) for b in t.boxes] == [(GAP, pytest.approx((20.0, 10.0, 60.0, 50.0)))]
    assert ds.dropped == {"tag": 1}
    assert ds.counts() == {"images": 2, "product": 1, "gap": 1}
    tr, va = split_items(ds)
    assert [i.image.name for i in tr] == ["t.jpg"] and [i.image.name for i in va] == ["v.jpg"]
    with pytest.warns(UserWarning):
        only = load_dataset(tmp_path, splits=["valid"])
    assert [it.image.name for it in only.items] == ["v.jpg"]


def test_write_yolo_round_trip(tmp_path: Path) -> None:
    _img(tmp_path / "src" / "images" / "a.jpg")
    _lab(tmp_path / "src" / "labels" / "a.txt", "1 0.5 0.5 0.5 0.5\n")
    ds = load_dataset(tmp_path / "src")
    write_yolo(ds.items, tmp_path / "out", "train")
    again = load_dataset(tmp_path / "out")
    [b] = again.items[0].boxes
    assert (b.cls, b.xyxy) == (GAP, pytest.approx((50.0, 25.0, 150.0, 75.0)))


def test_bad_folders_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="expected images/"):
        load_dataset(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(tmp_path)
    (tmp_path / "images" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="not a readable image"):
        load_dataset(tmp_path)


def _d(cls: int, conf: float, box: tuple[float, float, float, float]) -> Detection:
    return Detection(cls, conf, box)


def test_match_is_greedy_one_to_one_at_iou_03() -> None:
    truths = [Box(GAP, 0, 0, 100, 100), Box(GAP, 200, 0, 300, 100)]
    dets = [
        _d(GAP, 0.9, (0, 0, 100, 100)),  # exact: matches truth 0
        _d(GAP, 0.8, (10, 10, 100, 100)),  # also on truth 0, already taken: false positive
        _d(GAP, 0.7, (200, 0, 250, 60)),  # IoU 0.3 with truth 1: a match
        _d(GAP, 0.6, (500, 0, 600, 100)),  # nothing there
        _d(PRODUCT, 0.9, (200, 0, 300, 100)),  # other class: ignored
    ]
    assert match_boxes(dets, truths, GAP, 0.3) == (2, 4, 2)
    assert match_boxes(dets, truths, GAP, 0.31) == (1, 4, 2)
    assert match_boxes([], truths, GAP) == (0, 0, 2)
    assert match_boxes(dets, [], GAP) == (0, 4, 0)


class _Fixed:
    """Returns, per image in order, a fixed list of detections (the metric's input)."""

    def __init__(self, per_image: list[list[Detection]]) -> None:
        self.per_image = list(per_image)
        self.imgsz = 320

    def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [self.per_image.pop(0) for _ in images]


def test_eval_labelled_counts_recall_precision_and_ap(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names: ['empty']\n")
    _img(tmp_path / "images" / "a.jpg")
    _lab(tmp_path / "labels" / "a.txt", "0 0.25 0.5 0.5 1.0\n0 0.875 0.5 0.25 1.0\n")
    _img(tmp_path / "images" / "b.jpg")  # no gaps
    det = _Fixed(
        [
            [_d(GAP, 0.9, (0, 0, 100, 100)), _d(GAP, 0.1, (150, 0, 200, 100))],  # 2nd below conf
            [_d(GAP, 0.5, (0, 0, 50, 50)), _d(PRODUCT, 0.9, (0, 0, 10, 10))],
        ]
    )
    r = eval_labelled(tmp_path, detector=det, conf=0.25)
    assert r["gap"]["truth"] == 2 and r["gap"]["pred"] == 2 and r["gap"]["matched"] == 1
    assert r["gap_recall"] == 0.5 and r["gap_precision"] == 0.5
    # AP over all confidences: 0.9 TP, 0.5 FP, 0.1 TP -> between 0.5 and 1
    assert 0.5 < r["gap_ap50"] < 1.0
    assert r["product"] is None  # the set labels no products
    assert r["per_image"][1] == {
        "image": "b.jpg",
        "product": {"truth": 0, "pred": 1, "matched": 0},
        "gap": {"truth": 0, "pred": 1, "matched": 0},
    }
