"""Gaps inferred from product boxes and shelf-row geometry: a second signal beside the detector.

Run: `backroom eval-detector --data DIR --row-gaps --json` scores detector gaps plus these.

Products on one shelf sit in a row: their boxes share a vertical band. Along a row, a horizontal
stretch between two neighbouring products wider than a typical product of that row is empty
space the detector may have missed (dark recesses and bare racks look like nothing it was
trained on, but the products around them are easy). Only interior stretches are proposed: a
row's ends may be where the shelf ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backroom.vision import GAP, PRODUCT
from backroom.vision.detector import Detection


@dataclass(frozen=True)
class RowGapConfig:
    min_products: int = 3  # a row needs this many products to have a geometry
    min_width: float = 0.9  # a stretch wider than this × the row's median product width
    band_overlap: float = 0.5  # a product joins a row when it overlaps its band this much
    conf: float = 0.3  # confidence given to an inferred gap
    product_conf: float = 0.35  # products used to build rows


def _rows(boxes: np.ndarray, band_overlap: float) -> list[list[int]]:
    order = np.argsort((boxes[:, 1] + boxes[:, 3]) / 2)
    rows: list[list[int]] = []
    bands: list[tuple[float, float]] = []
    for i in order:
        y1, y2 = boxes[i, 1], boxes[i, 3]
        h = max(1e-6, y2 - y1)
        best, best_ov = -1, 0.0
        for k, (b1, b2) in enumerate(bands):
            ov = max(0.0, min(y2, b2) - max(y1, b1)) / min(h, max(1e-6, b2 - b1))
            if ov > best_ov:
                best, best_ov = k, ov
        if best >= 0 and best_ov >= band_overlap:
            rows[best].append(int(i))
            ys = boxes[rows[best]]
            bands[best] = (float(np.median(ys[:, 1])), float(np.median(ys[:, 3])))
        else:
            rows.append([int(i)])
            bands.append((float(y1), float(y2)))
    return rows


def row_gaps(dets: list[Detection], cfg: RowGapConfig | None = None) -> list[Detection]:
    """Gap boxes for wide empty stretches between neighbouring products of a shelf row."""
    cfg = cfg or RowGapConfig()
    prods = [d for d in dets if d.cls == PRODUCT and d.conf >= cfg.product_conf]
    if len(prods) < cfg.min_products:
        return []
    boxes = np.array([d.box for d in prods], dtype=np.float64)
    out: list[Detection] = []
    for row in _rows(boxes, cfg.band_overlap):
        if len(row) < cfg.min_products:
            continue
        b = boxes[row]
        b = b[np.argsort(b[:, 0])]
        mw = float(np.median(b[:, 2] - b[:, 0]))
        y1, y2 = float(np.median(b[:, 1])), float(np.median(b[:, 3]))
        right = b[0, 2]
        for nb in b[1:]:
            if nb[0] - right >= cfg.min_width * mw:
                out.append(Detection(GAP, cfg.conf, (float(right), y1, float(nb[0]), y2)))
            right = max(right, nb[2])
    return out


def with_row_gaps(dets: list[Detection], cfg: RowGapConfig | None = None) -> list[Detection]:
    """The detector's boxes plus inferred row gaps that no detected gap already covers."""
    from backroom.vision.evaluate import iou_matrix

    extra = row_gaps(dets, cfg)
    gaps = np.array([d.box for d in dets if d.cls == GAP], dtype=np.float64).reshape(-1, 4)
    if len(extra) and len(gaps):
        ious = iou_matrix(np.array([d.box for d in extra], dtype=np.float64), gaps)
        extra = [e for e, row in zip(extra, ious, strict=True) if row.max() < 0.3]
    return dets + extra
