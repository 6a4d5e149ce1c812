"""`backroom detect IMAGE... --json`: the contract's one JSON object per image.

Run: `backroom detect shelf.jpg --json [--planogram cam1.json]`. Each line is
`{"image", "width", "height", "detections": [{"cls", "conf", "box": [x1, y1, x2, y2]}]}` in
original-image pixels; with a planogram, `"slots"` adds per-SKU facings visible and fill. An
image that cannot be read yields `{"image", "error"}` (and the command exits 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from backroom.records import InvalidEvent, Planogram
from backroom.vision.detector import DEFAULT_MODEL, load_detector
from backroom.vision.frames import decode_image
from backroom.vision.gapcues import with_cue_gaps
from backroom.vision.shelf import read_planogram


def _load(path: Path, max_bytes: int, max_pixels: int) -> np.ndarray:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidEvent(f"cannot read image: {exc.strerror}") from None
    if size > max_bytes:
        raise InvalidEvent(f"image of {size} bytes exceeds frame_max_bytes {max_bytes}")
    return decode_image(path.read_bytes(), max_pixels)


def detect_images(
    images: list[Path],
    planogram: Path | None = None,
    backend: str = "onnx",
    model: Path | str | None = None,
    conf: float = 0.25,
    threads: int = 0,
    max_pixels: int = 25_000_000,
    max_bytes: int = 20_000_000,
    batch: int = 8,
    gap_cues: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield one contract object per image, in order, detecting in batches."""
    pg = Planogram.model_validate_json(Path(planogram).read_bytes()) if planogram else None
    det = load_detector(backend, model or DEFAULT_MODEL, threads=threads, conf=conf, batch=batch)
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        loaded: list[tuple[Path, np.ndarray | str]] = []
        for p in chunk:
            try:
                loaded.append((p, _load(p, max_bytes, max_pixels)))
            except InvalidEvent as exc:
                loaded.append((p, exc.reason))
        ok = [img for _, img in loaded if isinstance(img, np.ndarray)]
        results = iter(det.detect(ok)) if ok else iter([])
        for p, img in loaded:
            if isinstance(img, str):
                yield {"image": str(p), "error": img}
                continue
            dets = next(results)
            if gap_cues:
                dets = with_cue_gaps(img, dets)
            h, w = img.shape[:2]
            obj: dict[str, Any] = {
                "image": str(p),
                "width": w,
                "height": h,
                "detections": [d.to_dict() for d in dets],
            }
            if pg is not None:
                obj["slots"] = [
                    {
                        "sku": r.sku,
                        "facings_expected": r.facings_expected,
                        "facings_visible": r.facings_visible,
                        "fill_ratio": r.fill_ratio,
                        "confidence": r.confidence,
                    }
                    for r in read_planogram(pg, dets, w, h)
                ]
            yield obj
