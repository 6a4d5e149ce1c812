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
