"""A tiny training run end to end (1 epoch, 6 frames, 64 px): render → train → export → card.

Run: `.venv/bin/pytest tests/unit/vision/test_train_smoke.py` (needs the `[train]` extra;
about 15 s on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ultralytics")


def test_train_one_epoch_writes_pt_onnx_and_card(tmp_path: Path) -> None:
    from backroom.vision.detector import OnnxDetector
    from backroom.vision.train import TrainConfig, train_detector

    cfg = TrainConfig(
        n=6,
        seed=3,
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        arch="yolo11n",
        name="tiny",
        models_dir=tmp_path / "models",
        work_dir=tmp_path / "work",
        command="pytest smoke",
    )
    report = train_detector(cfg, log=lambda m: None)
    models = tmp_path / "models"
    assert (models / "tiny.pt").stat().st_size > 100_000
    card = (models / "tiny.md").read_text()
    assert "yolo11n" in card and "pytest smoke" in card
    det = OnnxDetector(models / "tiny.onnx", conf=0.5)
    assert det.imgsz == 64 and det.dynamic_batch
    assert report["final"]["epochs"] == 1


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about 1 min on an idle 2-core CPU; several times that when shared
def test_finetune_on_labelled_photos_writes_out_dir(tmp_path: Path) -> None:
    """`train-detector --data D --init models/shelf-gap.pt --out OUT`: a gap-only YOLO folder
    (class 'empty', polygons) is mixed with renders, products are pseudo-labelled by the init
    model, and OUT gets the .pt, .onnx and a card naming the data and its provenance."""
    import shutil

    from backroom.vision.detector import DEFAULT_MODEL, OnnxDetector
    from backroom.vision.render import render_dataset
    from backroom.vision.train import TrainConfig, train_detector

    src = tmp_path / "render"
    render_dataset(src, 4, seed=11)
    photos = tmp_path / "photos"
    (photos / "images").mkdir(parents=True)
    (photos / "labels").mkdir()
    for img in sorted((src / "images").rglob("*.jpg")):
        shutil.copyfile(img, photos / "images" / img.name)
        lab = src / "labels" / img.parent.name / f"{img.stem}.txt"
        gaps = []
        for line in lab.read_text().splitlines():
            c, x, y, w, h = (float(v) for v in line.split())
            if c == 1:  # keep gaps only, as a polygon, class 0 of a one-class set
                x1, y1, x2, y2 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
                gaps.append(f"0 {x1} {y1} {x2} {y1} {x2} {y2} {x1} {y2}")
        (photos / "labels" / f"{img.stem}.txt").write_text("\n".join(gaps) + "\n")
    (photos / "data.yaml").write_text("names: ['empty']\n")
    (photos / "PROVENANCE").write_text("hand-made test set, CC0\n")
    cfg = TrainConfig(
        n=4,
        seed=12,
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        data=[photos],
        init=DEFAULT_MODEL.with_suffix(".pt"),
        out=tmp_path / "out",
        work_dir=tmp_path / "work",
        command="pytest finetune smoke",
    )
    report = train_detector(cfg, log=lambda m: None)
    out = tmp_path / "out"
    assert (out / "shelf-gap.pt").stat().st_size > 100_000
    card = (out / "shelf-gap.md").read_text()
    assert str(photos) in card and "hand-made test set, CC0" in card and "fine-tuned" in card
    [s] = report["sources"]
    assert s["gap"] > 0 and s["product"] == 0 and "pseudo_products" in s
    assert OnnxDetector(out / "shelf-gap.onnx").imgsz == 64
