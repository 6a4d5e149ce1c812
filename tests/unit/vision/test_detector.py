"""The shipped weights (models/shelf-gap.onnx) on freshly rendered frames, and the detect JSON.

Run: `.venv/bin/pytest tests/unit/vision/test_detector.py`. Floors are below the held-out
figures in docs/vision.md so the test is stable yet fails if the weights or the
pre/post-processing break (a wrong letterbox offset or colour order drops recall to ~0).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import typer
from typer.testing import CliRunner

from backroom.vision.detector import DEFAULT_MODEL, OnnxDetector
from backroom.vision.evaluate import average_precision
from backroom.vision.render import render, sample_scene
from backroom.vision.shelf import SlotScores, slot_gap_scores

N_FRAMES = 12
SEED = 4242  # not a training seed


@pytest.fixture(scope="module")
def detector() -> OnnxDetector:
    assert DEFAULT_MODEL.is_file(), f"shipped weights missing: {DEFAULT_MODEL}"
    return OnnxDetector(DEFAULT_MODEL, threads=2, conf=0.001)


@pytest.fixture(scope="module")
def scenes() -> list:
    out = []
    for i in range(N_FRAMES):
        s = SEED * 1_000_003 + i
        pg, stock, diff = sample_scene(s)
        out.append((pg, stock, render(pg, stock, seed=s, difficulty=diff)))
    return out


def test_shipped_weights_find_gaps_per_slot(detector: OnnxDetector, scenes: list) -> None:
    preds = detector.detect([r.image for _, _, r in scenes])
    scores = SlotScores()
    for (pg, stock, r), dets in zip(scenes, preds, strict=True):
        kept = [d for d in dets if d.conf >= 0.25]
        h, w = r.image.shape[:2]
        slot_gap_scores(pg, stock, kept, w, h, scores, {s.sku: s.occluded for s in r.slots})
    assert scores.tp + scores.fn >= 20  # enough gaps for the floors to mean something
    assert scores.recall >= 0.95, scores.to_dict()
    assert scores.precision >= 0.95, scores.to_dict()
    gap_ap = average_precision(preds, [r.labels for _, _, r in scenes], 1)
    prod_ap = average_precision(preds, [r.labels for _, _, r in scenes], 0)
    assert gap_ap >= 0.95 and prod_ap >= 0.95, (gap_ap, prod_ap)


def test_batched_equals_single(detector: OnnxDetector, scenes: list) -> None:
    imgs = [r.image for _, _, r in scenes[:3]]
    batched = detector.detect(imgs)
    single = [detector.detect([im])[0] for im in imgs]
    for b, s in zip(batched, single, strict=True):
        top_b = sorted((d.cls, round(d.box[0]), round(d.box[1])) for d in b if d.conf > 0.5)
        top_s = sorted((d.cls, round(d.box[0]), round(d.box[1])) for d in s if d.conf > 0.5)
        assert top_b == top_s


def _app() -> typer.Typer:
    from cli.commands import vision

    app = typer.Typer()
    vision.register(app)
    app.command("noop", hidden=True)(lambda: None)  # keep typer in multi-command mode
    return app


def test_detect_json_one_object_per_image(tmp_path: Path, scenes: list) -> None:
    pg, _, r = scenes[0]
    paths = []
    for i, (_, _, rr) in enumerate(scenes[:2]):
        p = tmp_path / f"f{i}.jpg"
        cv2.imwrite(str(p), rr.image)
        paths.append(str(p))
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(r.image, (320, 240)))
    paths.append(str(small))
    (tmp_path / "pg.json").write_text(pg.model_dump_json())
    res = CliRunner().invoke(
        _app(), ["detect", *paths, "--json", "--planogram", str(tmp_path / "pg.json")]
    )
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3
    for line, p in zip(lines, paths, strict=True):
        obj = json.loads(line)
        assert obj["image"] == p
        assert set(obj) == {"image", "width", "height", "detections", "slots"}
        assert obj["detections"], "no detections on a shelf frame"
        for d in obj["detections"]:
            assert set(d) == {"cls", "conf", "box"} and d["cls"] in ("gap", "product")
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 < x2 <= obj["width"] and 0 <= y1 < y2 <= obj["height"]
            assert 0 < d["conf"] <= 1
        assert {s["sku"] for s in obj["slots"]} == {s.sku for s in pg.slots}
    assert (json.loads(lines[2])["width"], json.loads(lines[2])["height"]) == (320, 240)
    # Original-pixel boxes: the half-size copy's boxes are about half the full frame's.
    big = json.loads(lines[0])["detections"]
    half = json.loads(lines[2])["detections"]
    assert abs(max(d["box"][2] for d in half) * 2 - max(d["box"][2] for d in big)) < 20


def test_detect_reports_unreadable_image_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    res = CliRunner().invoke(_app(), ["detect", str(bad), "--json"])
    assert res.exit_code == 1
    obj = json.loads(res.stdout.strip())
    assert obj["image"] == str(bad) and "not an image" in obj["error"]
