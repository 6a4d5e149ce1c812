"""Empty shelf space from appearance cues along detected shelf rows: a second gap signal.

Run: `backroom eval-detector --data DIR --gap-cues --json` (real photos) or
`backroom eval-detector --n 200 --seed 999 --hard --gap-cues --json` (renders); `backroom
detect` and the camera pipeline apply it by default (`BACKROOM_GAP_CUES`, on).

The product detector finds packs on real photos far more reliably than it finds empty space
(dark recesses, bare grey shelf backs and pegboard look like nothing it was trained on). Where
products are found, their boxes tell where each shelf row is and what *stocked* looks like in
this image: packs are textured (print, edges between facings) and mostly coloured. Inside each
row band this module marks every image column that is not covered by a detected product and
looks empty — edge density well below the row's products, and either less saturated or darker
than them — and proposes a gap for each maximal horizontal run of such columns at least about
half a product wide, row ends included; the box spans the row band. A band between two rows
taller than a row (a shelf with no product found at all) is scanned the same way without a
product mask. Proposals a detector gap already covers are dropped (the detector box wins).

Everything is normalised per image by its own products, so the cues carry across cameras,
lighting and resolutions; the maps are computed once per frame on a grey/HSV copy downscaled to
at most `CueConfig.work_px` on its longest side (a few ms per frame on one core).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from backroom.vision import GAP, PRODUCT
from backroom.vision.detector import Detection
from backroom.vision.rowgaps import _rows


@dataclass(frozen=True)
class CueConfig:
    work_px: int = 320  # longest side of the downscaled maps
    product_conf: float = 0.5  # products that define rows and what "stocked" looks like
    min_products: int = 3  # a row needs this many products
    band_overlap: float = 0.5  # a product joins a row when it overlaps its band this much
    edge_ratio: float = 0.5  # empty: column edge density < this × the row's product median
    sat_ratio: float = 0.8  # ... and saturation < this × products' median
    val_ratio: float = 0.85  # ... or brightness < this × products' median
    min_width: float = 0.8  # a run at least this × the row's median product width
    close_width: float = 0.25  # bridge non-empty stretches narrower than this × product width
    min_aspect: float = 0.3  # width / height: narrower is a sliver between packs
    min_fill: float = 0.5  # fraction of columns inside a kept run that are empty
    between_rows: float = 1.5  # scan a band between rows taller than this × the row height
    covered: float = 0.5  # drop a proposal this much covered by a detector gap
    conf: float = 0.3  # confidence of a proposal at the emptiness threshold
    conf_max: float = 0.7
    border: bool = False  # keep runs that touch the image's left or right edge
    verify_products: bool = True  # an empty-looking product box does not hide its columns


@dataclass
class _Maps:
    edge: np.ndarray  # gradient magnitude, grey 0..255 scale
    sat: np.ndarray  # HSV saturation 0..255
    val: np.ndarray  # HSV value 0..255
    scale: float  # map pixels per image pixel


def _maps(img: np.ndarray, work_px: int) -> _Maps:
    import cv2

    h, w = img.shape[:2]
    scale = min(1.0, work_px / max(h, w))
    small = (
        cv2.resize(
            img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        if scale < 1.0
        else img
    )
    if small.ndim == 2:
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    grey = hsv[:, :, 2]
    gx = cv2.Sobel(grey, cv2.CV_16S, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_16S, 0, 1, ksize=3)
    edge = (np.abs(gx).astype(np.float32) + np.abs(gy).astype(np.float32)) / 8.0
    return _Maps(edge, hsv[:, :, 1].astype(np.float32), grey.astype(np.float32), scale)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _close(mask: np.ndarray, width: int) -> np.ndarray:
    """Fill False stretches shorter than `width` that have True on both sides."""
    out = mask.copy()
    for a, b in _runs(~mask):
        if a > 0 and b < len(mask) and b - a < width:
            out[a:b] = True
    return out


def _scan(
    m: _Maps,
    y1: float,
    y2: float,
    ref: tuple[float, float, float],
    mw: float,
    taken: np.ndarray | None,
    cfg: CueConfig,
) -> list[Detection]:
    """Gap proposals in one horizontal band (image pixels) given the products' reference
    edge density, saturation and brightness, and the median product width `mw`."""
    s = m.scale
    a, b = int(y1 * s), max(int(y1 * s) + 1, int(round(y2 * s)))
    if b - a < 2:
        return []
    e = m.edge[a:b].mean(axis=0)
    sat = m.sat[a:b].mean(axis=0)
    val = m.val[a:b].mean(axis=0)
    # Smooth over a fifth of a product: a column is one pixel wide, a facing is not.
    k = max(1, int(mw * s * 0.2))
    if k > 1:
        ker = np.ones(k, np.float32) / k
        e = np.convolve(e, ker, mode="same")
        sat = np.convolve(sat, ker, mode="same")
        val = np.convolve(val, ker, mode="same")
    re, rs, rv = ref
    empty = (e < cfg.edge_ratio * re) & ((sat < cfg.sat_ratio * rs) | (val < cfg.val_ratio * rv))
    if taken is not None:
        empty &= ~taken
    raw = empty
    empty = _close(empty, max(1, int(cfg.close_width * mw * s)))
    if taken is not None:
        empty &= ~taken
    out: list[Detection] = []
    for x0, x1 in _runs(empty):
        if (x1 - x0) < cfg.min_width * mw * s:
            continue
        if (x1 - x0) < cfg.min_aspect * (b - a):
            continue
        if raw[x0:x1].mean() < cfg.min_fill:
            continue
        if not cfg.border and (x0 == 0 or x1 == len(empty)):
            continue  # the frame cuts it: a wall or aisle beside the unit looks as flat
        margin = 1.0 - float(e[x0:x1].mean()) / max(cfg.edge_ratio * re, 1e-6)
        conf = min(cfg.conf_max, cfg.conf + (cfg.conf_max - cfg.conf) * max(0.0, margin))
        out.append(Detection(GAP, round(conf, 4), (x0 / s, float(y1), x1 / s, float(y2))))
    return out


def cue_gaps(
    img: np.ndarray, dets: list[Detection], cfg: CueConfig | None = None
) -> list[Detection]:
    """Gap boxes for empty-looking stretches of each shelf row (see the module docstring)."""
    cfg = cfg or CueConfig()
    prods = [d for d in dets if d.cls == PRODUCT and d.conf >= cfg.product_conf]
    if len(prods) < cfg.min_products:
        return []
    m = _maps(img, cfg.work_px)
    s = m.scale
    wm = m.edge.shape[1]
    boxes = np.array([d.box for d in prods], dtype=np.float64)
    # What "stocked" looks like in this image: medians over the product boxes' interiors.
    stats = []
    for x1, y1, x2, y2 in boxes:
        a, b = int(y1 * s), max(int(y1 * s) + 1, int(y2 * s))
        c, d = int(x1 * s), max(int(x1 * s) + 1, int(x2 * s))
        stats.append((m.edge[a:b, c:d].mean(), m.sat[a:b, c:d].mean(), m.val[a:b, c:d].mean()))
    st = np.array(stats)
    ref = (float(np.median(st[:, 0])), float(np.median(st[:, 1])), float(np.median(st[:, 2])))
    # A "product" box as flat as bare shelf (a false detection on an empty rack) must not
    # hide the empty columns under it.
    solid = ~(
        (st[:, 0] < cfg.edge_ratio * ref[0])
        & ((st[:, 1] < cfg.sat_ratio * ref[1]) | (st[:, 2] < cfg.val_ratio * ref[2]))
    )
    if not cfg.verify_products:
        solid[:] = True
    out: list[Detection] = []
    bands: list[tuple[float, float, float]] = []
    for row in _rows(boxes, cfg.band_overlap):
        if len(row) < cfg.min_products:
            continue
        rb = boxes[row]
        mw = float(np.median(rb[:, 2] - rb[:, 0]))
        y1, y2 = float(np.median(rb[:, 1])), float(np.median(rb[:, 3]))
        bands.append((y1, y2, mw))
        taken = np.zeros(wm, bool)
        for x1, _, x2, _ in boxes[[i for i in row if solid[i]]]:
            taken[int(x1 * s) : int(np.ceil(x2 * s))] = True
        out += _scan(m, y1, y2, ref, mw, taken, cfg)
    bands.sort()
    for (a1, a2, amw), (b1, b2, bmw) in itertools.pairwise(bands):
        hgt = ((a2 - a1) + (b2 - b1)) / 2
        if b1 - a2 > cfg.between_rows * hgt:
            out += _scan(m, a2, b1, ref, (amw + bmw) / 2, None, cfg)
    return out


def with_cue_gaps(
    img: np.ndarray, dets: list[Detection], cfg: CueConfig | None = None
) -> list[Detection]:
    """The detector's boxes plus cue gaps that no detector gap already covers."""
    extra = cue_gaps(img, dets, cfg)
    if not extra:
        return dets
    cfg = cfg or CueConfig()
    gaps = np.array([d.box for d in dets if d.cls == GAP and d.conf >= 0.25], dtype=np.float64)
    keep = []
    for e in extra:
        x1, y1, x2, y2 = e.box
        area = max((x2 - x1) * (y2 - y1), 1e-9)
        if len(gaps):
            iw = np.clip(np.minimum(gaps[:, 2], x2) - np.maximum(gaps[:, 0], x1), 0, None)
            ih = np.clip(np.minimum(gaps[:, 3], y2) - np.maximum(gaps[:, 1], y1), 0, None)
            if float((iw * ih).max()) / area >= cfg.covered:
                continue
        keep.append(e)
    return dets + keep
