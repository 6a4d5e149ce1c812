"""Held-out evaluation and speed benchmark of the shipped detector.

Run: `backroom eval-detector --n 200 --seed 999 --hard --json` (accuracy on freshly rendered
frames from another seed and harder settings than training, plus speed), or
`backroom bench vision --json` (speed only: ONNX Runtime vs the ultralytics backend).

mAP50 is computed here (COCO-style 101-point interpolated AP at IoU 0.5, as ultralytics
reports it) so evaluation needs neither torch nor a dataset on disk. Per-slot scores read each
frame through the planogram mapping (shelf.py) exactly as the live pipeline does.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from backroom.vision import CLASSES, GAP
from backroom.vision.detector import DEFAULT_MODEL, Detection, OnnxDetector
from backroom.vision.render import DEFAULT_SIZE, Box, render, sample_scene
from backroom.vision.shelf import SlotScores, slot_gap_scores

EVAL_CONF = 0.001  # for AP: the whole precision/recall curve
OPERATING_CONF = 0.25  # for per-slot scores: what the pipeline uses


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def average_precision(
    preds: list[list[Detection]], truths: list[list[Box]], cls: int, iou_thr: float = 0.5
) -> float:
    """AP of one class over a set of images (greedy matching by confidence)."""
    records: list[tuple[float, bool]] = []
    npos = 0
    for dets, gts in zip(preds, truths, strict=True):
        g = np.array([b.xyxy for b in gts if b.cls == cls], dtype=np.float64).reshape(-1, 4)
        npos += len(g)
        ds = sorted((d for d in dets if d.cls == cls), key=lambda d: -d.conf)
        p = np.array([d.box for d in ds], dtype=np.float64).reshape(-1, 4)
        ious = iou_matrix(p, g)
        used = np.zeros(len(g), bool)
        for k, d in enumerate(ds):
            if len(g):
                cand = np.where(~used, ious[k], -1.0)
                j = int(cand.argmax())
                if cand[j] >= iou_thr:
                    used[j] = True
                    records.append((d.conf, True))
                    continue
            records.append((d.conf, False))
    if npos == 0:
        return float("nan")
    if not records:
        return 0.0
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    fp = np.cumsum([not r[1] for r in records])
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, 1e-9)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(x, mrec, mpre), x))


def _machine() -> str:
    return f"{platform.machine()} {os.cpu_count()}-core CPU ({platform.processor() or 'cpu'})"


def frames_per_second(detector: Any, images: list[np.ndarray], batch: int, seconds: float) -> float:
    """Sustained frames/s of detect() (letterbox + forward + NMS) on decoded frames."""
    detector.detect(images[:batch])  # warm-up: allocations, thread pools
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or done == 0:
        for i in range(0, len(images), batch):
            detector.detect(images[i : i + batch])
            done += len(images[i : i + batch])
    return done / (time.perf_counter() - t0)


def end_to_end_fps(
    detector: Any, jpegs: list[bytes], seconds: float, gap_cues: bool = False
) -> float:
    """Sustained frames/s from JPEG bytes to boxes: decode, letterbox, forward, NMS, batch 1
    (and the appearance-cue gaps, as `backroom detect` and the pipeline run by default)."""
    import cv2

    from backroom.vision.gapcues import with_cue_gaps

    def one(b: bytes) -> None:
        img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
        [d] = detector.detect([img])
        if gap_cues and img is not None:
            with_cue_gaps(img, d)

    one(jpegs[0])
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or done == 0:
        for b in jpegs:
            one(b)
            done += 1
    return done / (time.perf_counter() - t0)


def bench_vision(
    model: Path | str | None = None,
    threads: int = 0,
    seconds: float = 3.0,
    n_images: int = 16,
    ultralytics: bool = True,
    size: tuple[int, int] = DEFAULT_SIZE,
    imgsz: int | None = None,
) -> dict[str, Any]:
    """Speed of the detector at its working resolution: ONNX Runtime batch 1 is the baseline;
    ONNX batch 8 and the ultralytics (torch) backend are reported as ratios against it."""
    onnx_path = Path(model) if model else DEFAULT_MODEL
    images = [
        render(*sample_scene(7000 + i)[:2], seed=7000 + i, size=size).image for i in range(n_images)
    ]
    threads = threads or os.cpu_count() or 1
    det1 = OnnxDetector(onnx_path, threads=threads, batch=1, imgsz=imgsz)
    det8 = OnnxDetector(onnx_path, threads=threads, batch=8, imgsz=imgsz)
    base = frames_per_second(det1, images, 1, seconds)
    import cv2

    jpegs = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for im in images]
    e2e = end_to_end_fps(det1, jpegs, seconds)
    out: dict[str, Any] = {
        "machine": _machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "threads": threads,
        "imgsz": det1.imgsz,
        "frame_size": list(size),
        "onnx_fps_batch1": round(base, 1),
        "onnx_ms_per_frame_batch1": round(1000 / base, 2),
        "end_to_end_fps_batch1": round(e2e, 1),
        "end_to_end_fps_batch1_gap_cues": round(end_to_end_fps(det1, jpegs, seconds, True), 1),
    }
    if det8.dynamic_batch:
        fps8 = frames_per_second(det8, images, 8, seconds)
        out["onnx_fps_batch8"] = round(fps8, 1)
        out["ratio_onnx_batch8_vs_batch1"] = round(fps8 / base, 3)
    if ultralytics:
        pt = onnx_path.with_suffix(".pt")
        try:
            from backroom.vision.detector import UltralyticsDetector

            ud = UltralyticsDetector(pt, imgsz=det1.imgsz, threads=threads, batch=1)
        except (ImportError, FileNotFoundError) as exc:
            out["ultralytics_error"] = f"{type(exc).__name__}: {exc}"
        else:
            ufps = frames_per_second(ud, images, 1, seconds)
            out["ultralytics_fps_batch1"] = round(ufps, 1)
            out["ratio_onnx_vs_ultralytics"] = round(base / ufps, 3)
    return out


def eval_detector(
    n: int = 200,
    seed: int = 999,
    hard: bool = True,
    model: Path | str | None = None,
    threads: int = 0,
    speed: bool = True,
    size: tuple[int, int] = DEFAULT_SIZE,
    conf: float = OPERATING_CONF,
    gap_cues: bool = False,
) -> dict[str, Any]:
    """Accuracy on `n` freshly rendered frames (seed, hard) + speed; one JSON-able dict."""
    det = OnnxDetector(Path(model) if model else DEFAULT_MODEL, threads=threads, conf=EVAL_CONF)
    preds: list[list[Detection]] = []
    truths: list[list[Box]] = []
    scores = SlotScores()
    t_render = t_det = 0.0
    for i in range(n):
        s = seed * 1_000_003 + i
        pg, stock, diff = sample_scene(s, hard)
        t = time.perf_counter()
        r = render(pg, stock, seed=s, size=size, difficulty=diff)
        t_render += time.perf_counter() - t
        t = time.perf_counter()
        [d] = det.detect([r.image])
        if gap_cues:
            from backroom.vision.gapcues import with_cue_gaps

            d = with_cue_gaps(r.image, d)
        t_det += time.perf_counter() - t
        preds.append(d)
        truths.append(r.labels)
        occluded = {st.sku: st.occluded for st in r.slots}
        kept = [x for x in d if x.conf >= conf]
        slot_gap_scores(pg, stock, kept, size[0], size[1], scores, occluded)
    aps = {c: average_precision(preds, truths, i) for i, c in enumerate(CLASSES)}
    out: dict[str, Any] = {
        "model": str(Path(model) if model else DEFAULT_MODEL),
        "frames": n,
        "seed": seed,
        "hard": hard,
        "frame_size": list(size),
        "imgsz": det.imgsz,
        "gap_map50": round(aps["gap"], 4),
        "product_map50": round(aps["product"], 4),
        "map50": round(float(np.nanmean(list(aps.values()))), 4),
        "operating_conf": conf,
        "gap_cues": gap_cues,
        **scores.to_dict(),
        "gap_boxes": sum(b.cls == GAP for t in truths for b in t),
        "render_s": round(t_render, 1),
        "detect_s": round(t_det, 1),
    }
    if speed:
        out["speed"] = bench_vision(model, threads=threads, size=size)
    return out


REAL_IOU = 0.3  # real empty space has soft edges: a box matches at IoU >= 0.3


def match_boxes(
    dets: list[Detection], truths: list[Box], cls: int, iou_thr: float = REAL_IOU
) -> tuple[int, int, int]:
    """(true positives, predictions, truths) of one class in one image: predictions taken by
    falling confidence, each matched to the unmatched truth it overlaps most if IoU >= iou_thr
    (greedy one-to-one, as COCO/ultralytics match)."""
    g = np.array([b.xyxy for b in truths if b.cls == cls], dtype=np.float64).reshape(-1, 4)
    ds = sorted((d for d in dets if d.cls == cls), key=lambda d: -d.conf)
    p = np.array([d.box for d in ds], dtype=np.float64).reshape(-1, 4)
    ious = iou_matrix(p, g)
    used = np.zeros(len(g), bool)
    tp = 0
    for k in range(len(ds)):
        if not len(g):
            break
        cand = np.where(~used, ious[k], -1.0)
        j = int(cand.argmax())
        if cand[j] >= iou_thr:
            used[j] = True
            tp += 1
    return tp, len(ds), len(g)


def eval_labelled(
    data: Path | str,
    model: Path | str | None = None,
    threads: int = 0,
    conf: float = OPERATING_CONF,
    iou_thr: float = REAL_IOU,
    imgsz: int | None = None,
    splits: list[str] | None = None,
    per_image: bool = True,
    names: list[str] | None = None,
    detector: Any = None,
    row_gaps: bool = False,
    gap_cues: bool = False,
) -> dict[str, Any]:
    """Gap (and product) box recall/precision at `iou_thr` and AP50 on a YOLO-format labelled
    folder (see yolo_data.py); per-image counts of truths, predictions and matches."""
    import cv2

    from backroom.vision.yolo_data import load_dataset

    ds = load_dataset(data, splits, names)
    path = Path(model) if model else DEFAULT_MODEL
    det = detector or OnnxDetector(path, threads=threads, conf=EVAL_CONF, batch=1, imgsz=imgsz)
    preds: list[list[Detection]] = []
    truths: list[list[Box]] = []
    rows: list[dict[str, Any]] = []
    tot = {c: [0, 0, 0] for c in CLASSES}
    t_det = 0.0
    for it in ds.items:
        img = cv2.imread(str(it.image), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{it.image}: not a readable image")
        t = time.perf_counter()
        [d] = det.detect([img])
        if row_gaps:
            from backroom.vision.rowgaps import with_row_gaps

            d = with_row_gaps(d)
        if gap_cues:
            from backroom.vision.gapcues import with_cue_gaps

            d = with_cue_gaps(img, d)
        t_det += time.perf_counter() - t
        preds.append(d)
        truths.append(it.boxes)
        kept = [x for x in d if x.conf >= conf]
        row: dict[str, Any] = {"image": it.image.name}
        for ci, c in enumerate(CLASSES):
            tp, npred, ntrue = match_boxes(kept, it.boxes, ci, iou_thr)
            tot[c][0] += tp
            tot[c][1] += npred
            tot[c][2] += ntrue
            row[c] = {"truth": ntrue, "pred": npred, "matched": tp}
        rows.append(row)

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    out: dict[str, Any] = {
        "data": str(data),
        "model": str(path),
        "images": len(ds.items),
        "imgsz": det.imgsz,
        "iou": iou_thr,
        "conf": conf,
        "row_gaps": row_gaps,
        "gap_cues": gap_cues,
        "class_names": ds.names,
        "dropped_labels": ds.dropped,
    }
    for ci, c in enumerate(CLASSES):
        tp, npred, ntrue = tot[c]
        if ci not in ds.mapping.values():
            out[c] = None  # the set does not label this class: nothing to score
            continue
        ap = average_precision(preds, truths, ci, 0.5)
        out[c] = {
            "truth": ntrue,
            "pred": npred,
            "matched": tp,
            "recall": ratio(tp, ntrue),
            "precision": ratio(tp, npred),
            "ap50": None if np.isnan(ap) else round(ap, 4),
        }
    g = out["gap"] or {}
    out["gap_recall"], out["gap_precision"], out["gap_ap50"] = (
        g.get("recall"),
        g.get("precision"),
        g.get("ap50"),
    )
    out["detect_ms_per_image"] = round(1000 * t_det / max(1, len(ds.items)), 1)
    if per_image:
        out["per_image"] = rows
    return out
