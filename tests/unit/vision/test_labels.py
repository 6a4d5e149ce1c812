"""The label store: YOLO line maths, wrong gaps dropped, drawn gaps, idempotence, confinement.

    pytest tests/unit/vision/test_labels.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from backroom.vision import CLASSES
from backroom.vision.labels import (
    MAX_DRAWN,
    LabelError,
    LabelRequest,
    LabelStore,
    example_id,
    read_yolo_labels,
)

W, H = 400, 200
BOXES: list[dict[str, Any]] = [
    {"cls": "product", "conf": 0.9, "box": [20.0, 40.0, 100.0, 180.0]},
    {"cls": "gap", "conf": 0.8, "box": [120.0, 40.0, 200.0, 180.0]},
    {"cls": "gap", "conf": 0.6, "box": [300.0, 40.0, 380.0, 180.0]},
]


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    root = tmp_path / "frames"
    (root / "S1" / "cam1").mkdir(parents=True)
    img = np.full((H, W, 3), 180, np.uint8)
    cv2.imwrite(str(root / "S1" / "cam1" / "f1.jpg"), img)
    cv2.imwrite(str(root / "S1" / "cam1" / "f2.png"), img)
    return root


@pytest.fixture
def store(tmp_path: Path, frames: Path) -> LabelStore:
    return LabelStore(tmp_path / "data" / "labels", frames)


def request(**kw: Any) -> LabelRequest:
    values: dict[str, Any] = dict(frame_uri="S1/cam1/f1.jpg", frame_event_id="fr-1", store_id="S1",
                                  camera_id="cam1", boxes=BOXES, frame_ts="2026-11-27T09:00:00+00:00",
                                  labelled_ts="2026-11-27T09:05:00+00:00")
    values.update(kw)
    return LabelRequest(**values)


def test_yolo_lines_wrong_gap_dropped_and_drawn_gap_added(store: LabelStore) -> None:
    saved = store.save(request(wrong=[[120, 40, 200, 180]], drawn=[[210, 50, 290, 170]]))
    lines = read_yolo_labels(saved.label)
    # product (20..100 x 40..180): cx 60/400, cy 110/200, w 80/400, h 140/200
    assert lines[0] == (0, 0.15, 0.55, 0.2, 0.7)
    assert lines[1] == (1, 0.85, 0.55, 0.2, 0.7)  # the kept gap at 300..380
    assert lines[2] == (1, 0.625, 0.55, 0.2, 0.6)  # the drawn gap 210..290 x 50..170
    assert len(lines) == 3  # the wrong gap at 120..200 is gone
    assert saved.image.read_bytes() == (store.frame_root / "S1/cam1/f1.jpg").read_bytes()
    assert saved.image.suffix == ".jpg"
    meta = json.loads((store.meta_dir / f"{saved.id}.json").read_text())
    assert meta["changes"] == {"wrong_gaps": [[120.0, 40.0, 200.0, 180.0]],
                               "drawn_gaps": [[210.0, 50.0, 290.0, 170.0]]}
    assert meta["frame_event_id"] == "fr-1" and meta["store_id"] == "S1" and meta["camera_id"] == "cam1"
    assert meta["frame_ts"] == "2026-11-27T09:00:00+00:00" and meta["by"] == "operator"
    assert meta["counts"] == {"product": 1, "gap": 2} and (meta["width"], meta["height"]) == (W, H)
    spec = yaml.safe_load((store.root / "data.yaml").read_text())
    assert spec["names"] == dict(enumerate(CLASSES)) and spec["train"] == "images"


def test_normalised_drawn_boxes_and_png_frames(store: LabelStore) -> None:
    saved = store.save(request(frame_uri="S1/cam1/f2.png", frame_event_id="fr-2",
                               drawn=[[0.5, 0.25, 0.75, 0.75]], units="norm"))
    assert saved.image.suffix == ".png"
    assert read_yolo_labels(saved.label)[-1] == (1, 0.625, 0.5, 0.25, 0.5)
    assert saved.meta["changes"]["drawn_gaps"] == [[200.0, 50.0, 300.0, 150.0]]


def test_resaving_a_frame_replaces_its_example(store: LabelStore) -> None:
    first = store.save(request(wrong=[[120, 40, 200, 180]]))
    second = store.save(request(drawn=[[210, 50, 290, 170]], labelled_ts="2026-11-27T09:09:00+00:00"))
    assert first.id == second.id == example_id("S1", "cam1", "fr-1")
    assert len(list(store.images_dir.iterdir())) == 1 and len(list(store.labels_dir.iterdir())) == 1
    assert len(read_yolo_labels(second.label)) == 4  # both detector gaps back, plus the drawn one
    summary = store.summary()
    assert summary["count"] == 1 and summary["recent"][0]["labelled_ts"].endswith("09:09:00+00:00")
    store.save(request(frame_event_id="fr-3"))
    assert store.summary()["count"] == 2 and store.summary()["boxes"] == {"product": 2, "gap": 5}


def test_frames_outside_the_frame_root_are_refused(store: LabelStore, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "secret.jpg"), np.zeros((8, 8, 3), np.uint8))
    (store.frame_root / "S1" / "cam1" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (store.frame_root / "S1" / "cam1" / "notes.jpg").write_text("not an image")
    for uri, status in [("../secret.jpg", 400), (str(tmp_path / "secret.jpg"), 400),
                        ("S1/cam1/link.jpg", 400), ("http://x/y.jpg", 400),
                        ("S1/cam1/missing.jpg", 404), ("S1/cam1/notes.jpg", 400)]:
        with pytest.raises(LabelError) as err:
            store.save(request(frame_uri=uri))
        assert err.value.status == status, uri
    assert not store.root.exists() or not any(store.images_dir.iterdir())


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"drawn": [[390, 10, 420, 50]]}, "outside"),
        ({"drawn": [[-5, 10, 40, 50]]}, "outside"),
        ({"drawn": [[0.2, 0.2, 1.4, 0.5]], "units": "norm"}, "outside"),
        ({"drawn": [[10, 10, 11, 80]]}, "degenerate"),
        ({"drawn": [[10, 10, 80]]}, "x0, y0, x1, y1"),
        ({"drawn": [[10, "a", 80, 90]]}, "four numbers"),
        ({"drawn": [[10, float("nan"), 80, 90]]}, "finite"),
        ({"drawn": [[10, 10, 50, 50]] * (MAX_DRAWN + 1)}, "at most"),
        ({"wrong": [[20, 40, 100, 180]]}, "not one of this frame's gap boxes"),  # a product
        ({"units": "inches"}, "units"),
        ({"boxes": [{"cls": "shelf", "box": [0, 0, 5, 5]}]}, "cls"),
    ],
)
def test_bad_requests_say_why_and_write_nothing(store: LabelStore, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(LabelError, match=message) as err:
        store.save(request(**kw))
    assert 400 <= err.value.status < 500
    assert store.summary()["count"] == 0


def test_export_round_trip(store: LabelStore, tmp_path: Path) -> None:
    a = store.save(request(wrong=[[300, 40, 380, 180]], drawn=[[210, 50, 290, 170]]))
    b = store.save(request(frame_uri="S1/cam1/f2.png", frame_event_id="fr-2"))
    out = store.export(tmp_path / "export")
    assert out.images == 2 and out.boxes == {"product": 2, "gap": 4}
    assert out.drawn == 1 and out.wrong == 1
    for saved in (a, b):
        assert read_yolo_labels(tmp_path / "export" / "labels" / saved.label.name) == read_yolo_labels(saved.label)
        assert (tmp_path / "export" / "images" / saved.image.name).read_bytes() == saved.image.read_bytes()
    spec = yaml.safe_load((tmp_path / "export" / "data.yaml").read_text())
    assert Path(spec["path"]) == (tmp_path / "export").resolve() and spec["names"] == {0: "product", 1: "gap"}
    with pytest.raises(LabelError, match="inside the label store"):
        store.export(store.root / "sub")


def test_cli_export_round_trip(store: LabelStore, tmp_path: Path) -> None:
    """`backroom labels export DIR --json`, then the YOLO folder read back the way a trainer
    reads it (data.yaml → images → labels/<stem>.txt) gives the saved boxes in pixels."""
    import os
    import subprocess
    import sys

    store.save(request(wrong=[[120, 40, 200, 180]], drawn=[[210.5, 50, 290, 170.25]]))
    env = {**os.environ, "BACKROOM_DATA_DIR": str(store.root.parent),
           "BACKROOM_FRAME_ROOT": str(store.frame_root), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = tmp_path / "yolo"
    res = subprocess.run([sys.executable, "-m", "cli.main", "labels", "export", str(out), "--json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["images"] == 1 and summary["boxes"] == {"product": 1, "gap": 2}
    assert summary["drawn_gaps"] == 1 and summary["wrong_gaps_dropped"] == 1

    spec = yaml.safe_load(Path(summary["data_yaml"]).read_text())
    images = sorted((Path(spec["path"]) / spec["train"]).glob("*.jpg"))
    assert len(images) == 1 and cv2.imread(str(images[0])).shape == (H, W, 3)
    label = Path(str(images[0]).replace("/images/", "/labels/")).with_suffix(".txt")
    pixels = sorted(
        (spec["names"][c], round((cx - w / 2) * W, 2), round((cy - h / 2) * H, 2),
         round((cx + w / 2) * W, 2), round((cy + h / 2) * H, 2))
        for c, cx, cy, w, h in read_yolo_labels(label)
    )
    assert pixels == [("gap", 210.5, 50.0, 290.0, 170.25), ("gap", 300.0, 40.0, 380.0, 180.0),
                      ("product", 20.0, 40.0, 100.0, 180.0)]

    res = subprocess.run([sys.executable, "-m", "cli.main", "labels", "export", str(store.root / "x")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "inside the label store" in res.stderr


def test_a_detector_box_overhanging_the_frame_is_clipped_and_still_markable(store: LabelStore) -> None:
    boxes = [*BOXES, {"cls": "gap", "conf": 0.5, "box": [350.0, -3.0, 404.5, 120.0]}]
    saved = store.save(request(boxes=boxes, wrong=[[350.0, -3.0, 404.5, 120.0]]))
    assert saved.meta["changes"]["wrong_gaps"] == [[350.0, 0.0, 400.0, 120.0]]
    assert len(read_yolo_labels(saved.label)) == 3
    clipped = store.save(request(boxes=boxes, frame_event_id="fr-5"))
    assert read_yolo_labels(clipped.label)[-1] == (1, 0.9375, 0.3, 0.125, 0.6)


def test_concurrent_saves_of_one_frame_leave_one_consistent_example(store: LabelStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def save(i: int) -> None:
        store.save(request(boxes=BOXES[:1], drawn=[[210 + i, 50, 290, 170]]))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(save, range(16)))
    [meta] = store.examples()
    [(x0, *_)] = meta["changes"]["drawn_gaps"]
    [_, (_, cx, _, w, _)] = read_yolo_labels(store.labels_dir / meta["label"])
    assert abs((cx - w / 2) * W - x0) < 0.01  # the label file matches its sidecar
    assert sorted(p.name for p in store.root.rglob("*.tmp")) == []
