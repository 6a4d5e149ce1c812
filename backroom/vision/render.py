"""Synthetic shelf camera frames with exact YOLO labels (classes `product` 0, `gap` 1).

Run: `backroom render-dataset --n 200 --seed 1 [--hard] OUT/` (an ultralytics dataset), or in
Python::

    pg = random_planogram("s1", "cam1", seed=3)
    img, labels = render_frame(pg, {s.sku: s.facings - 1 for s in pg.slots}, seed=7)

A planogram's slots are grouped into shelf rows by their y-range; every slot is split into
`facings` equal cells. A cell is either filled (one pack drawn standing on the shelf floor, maybe
pushed back) or empty (the back panel shows). The look of a SKU's pack is derived from a hash of
its code, so the same SKU looks the same in every frame, like a real product.

Gap labelling (why it is done this way): a camera cannot see where one empty facing ends and the
next begins — the back panel is uniform — so per-facing gap boxes are not learnable (they
plateau near 0.7 AP50). A gap label is therefore one box per maximal run of adjacent empty cells
along a shelf row (merging across slot borders, because nothing visible separates them), spanning
the full height of the shelf opening. Every edge of such a box is visible in the image. The
planogram mapping (`shelf.py`) then splits gap boxes back into facings per slot by horizontal
overlap, and evaluation scores gaps per slot.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from backroom.records import Planogram, PlanogramSlot
from backroom.vision import CLASSES, GAP, PRODUCT

DEFAULT_SIZE = (640, 480)  # (width, height) of a rendered camera frame


@dataclass(frozen=True)
class Box:
    """One labelled object, pixel corners in the final (warped) frame."""

    cls: int
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass
class SlotTruth:
    sku: str
    facings: int
    visible: int
    box: tuple[float, float, float, float]  # pixels, after the perspective warp
    occluded: float  # fraction of the slot covered by an occluder


@dataclass
class Rendered:
    image: np.ndarray  # BGR uint8
    labels: list[Box]
    slots: list[SlotTruth] = field(default_factory=list)
    difficulty: float = 0.0


# --- planograms --------------------------------------------------------------------------------


def random_planogram(
    store_id: str, camera_id: str, seed: int, rows: int | None = None
) -> Planogram:
    """A plausible planogram for one camera: 3–5 shelf rows filled edge to edge with SKU slots.

    Slot boxes are normalised frame coordinates of the shelf opening the SKU occupies; rows are
    separated by shelf boards (where the price tags are)."""
    rng = np.random.default_rng(seed)
    n_rows = int(rows or rng.integers(3, 6))
    top = rng.uniform(0.03, 0.09)
    bottom = rng.uniform(0.04, 0.10)
    board = rng.uniform(0.035, 0.06)
    opening = (1.0 - top - bottom - board * (n_rows - 1)) / n_rows
    left = rng.uniform(0.01, 0.04)
    right = 1.0 - rng.uniform(0.01, 0.04)
    slots: list[PlanogramSlot] = []
    used: set[str] = set()
    for r in range(n_rows):
        y0 = top + r * (opening + board)
        y1 = y0 + opening
        target = int(rng.integers(7, 17))  # facings along the row
        facings: list[int] = []
        while sum(facings) < target:
            facings.append(min(int(rng.integers(1, 6)), target - sum(facings)))
        rel = [float(rng.uniform(0.7, 1.4)) for _ in facings]
        unit = (right - left) / sum(f * w for f, w in zip(facings, rel, strict=True))
        x = left
        for f, w in zip(facings, rel, strict=True):
            sku = f"P{int(rng.integers(0, 100000)):05d}"
            while sku in used:
                sku = f"P{int(rng.integers(0, 100000)):05d}"
            used.add(sku)
            x1 = min(right, x + f * w * unit)
            slots.append(
                PlanogramSlot(
                    sku=sku,
                    box=[round(x, 5), round(y0, 5), round(x1, 5), round(y1, 5)],
                    facings=f,
                )
            )
            x = x1
    return Planogram(store_id=store_id, camera_id=camera_id, slots=slots)


def random_stock(planogram: Planogram, rng: np.random.Generator) -> dict[str, int]:
    """Visible facings per SKU as a store has them: mostly full, some partly or fully empty."""
    out: dict[str, int] = {}
    for s in planogram.slots:
        u = rng.random()
        if u < 0.45:
            out[s.sku] = s.facings
        elif u < 0.60:
            out[s.sku] = 0
        else:
            out[s.sku] = int(rng.integers(0, s.facings + 1))
    return out


# --- appearance --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    shape: str  # box | bottle | can | pouch
    color: tuple[int, int, int]
    band: tuple[int, int, int]
    accent: tuple[int, int, int]
    height: float  # fraction of the shelf opening
    width: float  # fraction of the facing cell
    band_pos: float
    band_h: float
    marks: int


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    px = np.array([[[int(h) % 180, int(s), int(v)]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def sku_look(sku: str) -> _Look:
    """A SKU's pack design, stable across frames and runs (crc32 of the code, not hash())."""
    rng = np.random.default_rng(zlib.crc32(sku.encode()))
    shape = str(rng.choice(["box", "box", "bottle", "can", "pouch"]))
    hue = rng.uniform(0, 180)
    color = _hsv(hue, rng.uniform(80, 255), rng.uniform(90, 245))
    band = _hsv(hue + rng.uniform(40, 140), rng.uniform(0, 255), rng.uniform(150, 255))
    accent = _hsv(rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(40, 220))
    height = {"box": (0.55, 0.93), "bottle": (0.7, 0.95), "can": (0.4, 0.7), "pouch": (0.5, 0.85)}
    lo, hi = height[shape]
    return _Look(
        shape=shape,
        color=color,
        band=band,
        accent=accent,
        height=float(rng.uniform(lo, hi)),
        width=float(rng.uniform(0.78, 0.94)),
        band_pos=float(rng.uniform(0.25, 0.65)),
        band_h=float(rng.uniform(0.12, 0.35)),
        marks=int(rng.integers(2, 6)),
    )


def _dim(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return (int(c[0] * f), int(c[1] * f), int(c[2] * f))


def _shade(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, strength: float) -> None:
    """Cylinder-like horizontal shading, so packs look three-dimensional."""
    w = x1 - x0
    if w < 2 or y1 <= y0:
        return
    t = np.linspace(-1.0, 1.0, w)
    prof = (1.0 - strength * t**2).astype(np.float32)[None, :, None]
    roi = img[y0:y1, x0:x1].astype(np.float32) * prof
    img[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)


def _draw_marks(
    img: np.ndarray,
    rng: np.random.Generator,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    n: int,
    color: tuple[int, int, int],
) -> None:
    """Text-like marks: short bars of varying length, like printed words."""
    h = y1 - y0
    w = x1 - x0
    if h < 4 or w < 6:
        return
    line_h = max(1, h // (n + 2))
    for i in range(n):
        yy = y0 + (i + 1) * h // (n + 1)
        xx = x0 + int(w * rng.uniform(0.08, 0.2))
        end = x0 + int(w * rng.uniform(0.5, 0.92))
        while xx < end:
            word = int(w * rng.uniform(0.08, 0.3))
            cv2.rectangle(img, (xx, yy), (min(end, xx + word), yy + line_h - 1), color, -1)
            xx += word + max(2, w // 20)


def _draw_pack(
    img: np.ndarray,
    look: _Look,
    rng: np.random.Generator,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    dim: float,
) -> None:
    col, band, acc = _dim(look.color, dim), _dim(look.band, dim), _dim(look.accent, dim)
    w, h = x1 - x0, y1 - y0
    if look.shape == "bottle":
        neck_w = max(2, int(w * rng.uniform(0.3, 0.45)))
        shoulder = y0 + int(h * 0.28)
        cx = (x0 + x1) // 2
        cv2.rectangle(
            img, (cx - neck_w // 2, y0 + int(h * 0.06)), (cx + neck_w // 2, shoulder), col, -1
        )
        cv2.rectangle(
            img, (cx - neck_w // 2 - 1, y0), (cx + neck_w // 2 + 1, y0 + int(h * 0.07)), acc, -1
        )
        pts = np.array(
            [
                [cx - neck_w // 2, shoulder],
                [cx + neck_w // 2, shoulder],
                [x1, shoulder + int(h * 0.12)],
                [x1, y1],
                [x0, y1],
                [x0, shoulder + int(h * 0.12)],
            ],
            np.int32,
        )
        cv2.fillPoly(img, [pts], col, lineType=cv2.LINE_AA)
        by0 = shoulder + int(h * 0.2)
    elif look.shape == "can":
        cv2.rectangle(img, (x0, y0 + 2), (x1, y1 - 2), col, -1)
        cv2.ellipse(img, ((x0 + x1) // 2, y0 + 3), (w // 2, 3), 0, 0, 360, (200, 200, 205), -1)
        by0 = y0 + int(h * 0.25)
    elif look.shape == "pouch":
        pts = np.array([[x0 + w // 8, y0], [x1 - w // 8, y0], [x1, y1], [x0, y1]], np.int32)
        cv2.fillPoly(img, [pts], col, lineType=cv2.LINE_AA)
        by0 = y0 + int(h * look.band_pos)
    else:
        cv2.rectangle(img, (x0, y0), (x1, y1), col, -1)
        by0 = y0 + int(h * look.band_pos)
    bh = max(2, int(h * look.band_h))
    by1 = min(y1 - 1, by0 + bh)
    cv2.rectangle(img, (x0 + 1, by0), (x1 - 1, by1), band, -1)
    _draw_marks(img, rng, x0 + 1, by0, x1 - 1, by1, look.marks, acc)
    if w > 10 and rng.random() < 0.6:
        r = max(2, w // 6)
        cy = max(y0 + r, by0 - r - 2)
        cv2.circle(img, (x0 + w // 2, cy), r, acc, -1, lineType=cv2.LINE_AA)
    _shade(img, x0, y0, x1, y1, 0.25 + 0.2 * (look.shape in ("bottle", "can")))
    cv2.rectangle(img, (x0, y0), (x1, y1), _dim(col, 0.55), 1)  # pack edge


# --- frames ------------------------------------------------------------------------------------


def _rows(planogram: Planogram) -> list[tuple[float, float, list[int]]]:
    """Slots grouped into shelf rows by their y-range: (y0, y1, slot indexes sorted by x)."""
    rows: dict[tuple[float, float], list[int]] = {}
    for i, s in enumerate(planogram.slots):
        key = (round(s.box[1], 3), round(s.box[3], 3))
        rows.setdefault(key, []).append(i)
    out = []
    for (y0, y1), idx in sorted(rows.items()):
        out.append((y0, y1, sorted(idx, key=lambda i: planogram.slots[i].box[0])))
    return out


def _empty_cells(n: int, visible: int, rng: np.random.Generator) -> list[bool]:
    """Which of a slot's n facing cells are empty: sold from one end mostly, else scattered."""
    k = n - max(0, min(n, visible))
    if k == 0:
        return [False] * n
    if rng.random() < 0.65:
        cells = [True] * k + [False] * (n - k)
        return cells if rng.random() < 0.5 else cells[::-1]
    empty = set(rng.choice(n, size=k, replace=False).tolist())
    return [i in empty for i in range(n)]


def render(
    planogram: Planogram,
    visible_facings: dict[str, int],
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    difficulty: float = 0.5,
    occluders: bool = True,
    skew: bool = True,
) -> Rendered:
    """Render one camera frame of `planogram` with `visible_facings[sku]` packs in each slot.

    `difficulty` (0 = studio, 1 = the hardest training frames, >1 = harder than training)
    scales lighting, glare, noise, blur, JPEG loss, skew, occluders and pushed-back stock.
    `occluders=False, skew=False` give labels exactly on the planogram's grid (for tests)."""
    rng = np.random.default_rng(seed)
    d = float(difficulty)
    W, H = size
    img: np.ndarray = np.empty((H, W, 3), np.uint8)

    # Shelf unit: uprights, boards and back panel.
    panel = _hsv(rng.uniform(0, 180), rng.uniform(0, 40), rng.uniform(150, 235))
    metal = _hsv(rng.uniform(0, 180), rng.uniform(0, 30), rng.uniform(40, 110))
    board = _hsv(rng.uniform(0, 180), rng.uniform(0, 50), rng.uniform(160, 245))
    img[:] = metal
    rows = _rows(planogram)
    xs = [s.box[0] for s in planogram.slots] + [s.box[2] for s in planogram.slots]
    ux0, ux1 = int(min(xs) * W), int(math.ceil(max(xs) * W))
    pegboard = rng.random() < 0.4
    for y0n, y1n, _ in rows:
        y0, y1 = int(y0n * H), int(math.ceil(y1n * H))
        img[y0:y1, ux0:ux1] = panel
        if pegboard:
            step = int(rng.integers(9, 16))
            hole = tuple(int(c * 0.6) for c in panel)
            for yy in range(y0 + step // 2, y1, step):
                for xx in range(ux0 + step // 2, ux1, step):
                    img[yy : yy + 2, xx : xx + 2] = hole
        # Shadow under the board above: darkest at the top of the opening.
        sh = max(2, int((y1 - y0) * rng.uniform(0.15, 0.35)))
        prof = np.linspace(0.55, 1.0, sh, dtype=np.float32)[:, None, None]
        img[y0 : y0 + sh, ux0:ux1] = (img[y0 : y0 + sh, ux0:ux1] * prof).astype(np.uint8)
        # Shelf floor seen from slightly above.
        fl = max(2, int((y1 - y0) * 0.05))
        img[y1 - fl : y1, ux0:ux1] = tuple(int(c * 0.7) for c in board)
        # Front edge of the board with its price-tag strip.
        edge = max(4, int(H * 0.028))
        img[y1 : min(H, y1 + edge), ux0:ux1] = board
        img[min(H - 1, y1 + edge - 1) : min(H, y1 + edge), ux0:ux1] = metal
    top_board = int(rows[0][0] * H) if rows else 0
    img[max(0, top_board - max(4, int(H * 0.028))) : top_board, ux0:ux1] = board

    labels: list[tuple[int, float, float, float, float]] = []
    slot_boxes: list[tuple[float, float, float, float]] = [
        (s.box[0] * W, s.box[1] * H, s.box[2] * W, s.box[3] * H) for s in planogram.slots
    ]
    occluder_mask: np.ndarray = np.zeros((H, W), np.uint8)

    for y0n, y1n, idx in rows:
        ry0, ry1 = y0n * H, y1n * H
        run: list[float] | None = None  # [x0, x1] of the current gap run in this row
        prev_x1: float | None = None
        for i in idx:
            s = planogram.slots[i]
            look = sku_look(s.sku)
            vis = int(visible_facings.get(s.sku, s.facings))
            empty = _empty_cells(s.facings, vis, rng)
            cw = (s.box[2] - s.box[0]) * W / s.facings
            pushed = rng.random() < (0.15 + 0.45 * d) * (1.0 if 0 < vis < s.facings else 0.4)
            # A price tag at the slot's left end, on the board edge.
            tx = int(s.box[0] * W + cw * 0.1)
            ty = int(ry1 + 2)
            tw, th = max(8, int(cw * 0.5)), max(3, int(H * 0.028) - 4)
            tag = (255, 255, 255) if rng.random() < 0.7 else (60, 220, 250)
            cv2.rectangle(img, (tx, ty), (tx + tw, ty + th), tag, -1)
            _draw_marks(img, rng, tx + 1, ty, tx + tw - 1, ty + th, 2, (40, 40, 40))
            for c in range(s.facings):
                cx0 = s.box[0] * W + c * cw
                cx1 = cx0 + cw
                if empty[c]:
                    # Merge with the run so far when nothing visible separates the cells.
                    if run is not None and prev_x1 is not None and cx0 - prev_x1 < 0.5 * cw:
                        run[1] = cx1
                    else:
                        if run is not None:
                            labels.append((GAP, run[0], ry0, run[1], ry1))
                        run = [cx0, cx1]
                    prev_x1 = cx1
                    continue
                if run is not None:
                    labels.append((GAP, run[0], ry0, run[1], ry1))
                    run = None
                prev_x1 = cx1
                scale = rng.uniform(0.8, 0.9) if pushed else 1.0
                pw = cw * look.width * scale * rng.uniform(0.97, 1.03)
                ph = (ry1 - ry0) * look.height * scale * rng.uniform(0.98, 1.02)
                px0 = cx0 + (cw - pw) / 2 + rng.uniform(-0.04, 0.04) * cw
                floor = ry1 - (ry1 - ry0) * (0.03 + (0.06 if pushed else 0.0))
                py0 = max(ry0 + 1, floor - ph)
                box = (int(round(px0)), int(round(py0)), int(round(px0 + pw)), int(round(floor)))
                dim = rng.uniform(0.65, 0.8) if pushed else rng.uniform(0.92, 1.05)
                _draw_pack(img, look, rng, *box, dim=min(1.0, dim))
                labels.append((PRODUCT, float(box[0]), float(box[1]), float(box[2]), float(box[3])))
        if run is not None:
            labels.append((GAP, run[0], ry0, run[1], ry1))

    # Occasional occluders: a shopper at the side of the frame or a cart at the bottom.
    if rng.random() < 0.08 + 0.25 * d and occluders:
        col = _hsv(rng.uniform(0, 180), rng.uniform(40, 255), rng.uniform(30, 200))
        if rng.random() < 0.5:
            cx = int(rng.choice([rng.uniform(-0.05, 0.12), rng.uniform(0.88, 1.05)]) * W)
            rw = int(W * rng.uniform(0.1, 0.18))
            cv2.ellipse(occluder_mask, (cx, int(H * 0.75)), (rw, int(H * 0.45)), 0, 0, 360, 255, -1)
            cv2.circle(occluder_mask, (cx, int(H * 0.2)), int(rw * 0.55), 255, -1)
        else:
            cx0 = int(W * rng.uniform(0.0, 0.6))
            cw_ = int(W * rng.uniform(0.25, 0.4))
            cv2.rectangle(
                occluder_mask, (cx0, int(H * rng.uniform(0.8, 0.9))), (cx0 + cw_, H), 255, -1
            )
            col = (150, 150, 155)
        img[occluder_mask > 0] = col
        if col == (150, 150, 155):  # cart mesh
            for xx in range(0, W, 8):
                img[:, xx][occluder_mask[:, xx] > 0] = (90, 90, 95)

    # Slight perspective skew; labels follow the corners of their boxes.
    j = (0.004 + 0.02 * d) * min(W, H)
    src = np.array([[0, 0], [W, 0], [W, H], [0, H]], dtype=np.float32)
    dst = (src + rng.uniform(-j, j, size=(4, 2)) * float(skew)).astype(np.float32)
    M = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, M, (W, H), borderMode=cv2.BORDER_REPLICATE)
    occluder_mask = cv2.warpPerspective(occluder_mask, M, (W, H), flags=cv2.INTER_NEAREST)

    def warp_box(b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = b
        pts = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], dtype=np.float32)
        q = cv2.perspectiveTransform(pts, M)[0]
        return (
            float(np.clip(q[:, 0].min(), 0, W)),
            float(np.clip(q[:, 1].min(), 0, H)),
            float(np.clip(q[:, 0].max(), 0, W)),
            float(np.clip(q[:, 1].max(), 0, H)),
        )

    def covered(b: tuple[float, float, float, float]) -> float:
        x0, y0, x1, y1 = (int(round(v)) for v in b)
        if x1 <= x0 or y1 <= y0:
            return 1.0
        return float(occluder_mask[y0:y1, x0:x1].mean() / 255.0)

    out_labels: list[Box] = []
    for cls, *b in labels:
        wb = warp_box((b[0], b[1], b[2], b[3]))
        if wb[2] - wb[0] < 2 or wb[3] - wb[1] < 2:
            continue
        if covered(wb) > 0.45:  # mostly hidden: no one could label it
            continue
        out_labels.append(Box(cls, *wb))
    slots = []
    for s, sb in zip(planogram.slots, slot_boxes, strict=True):
        wb = warp_box(sb)
        vis = max(0, min(s.facings, int(visible_facings.get(s.sku, s.facings))))
        slots.append(SlotTruth(s.sku, s.facings, vis, wb, covered(wb)))

    img = _photometric(img, rng, d)
    return Rendered(image=img, labels=out_labels, slots=slots, difficulty=d)


def _photometric(img: np.ndarray, rng: np.random.Generator, d: float) -> np.ndarray:
    """Store lighting and a cheap camera: gradients, glare, blur, noise, JPEG loss."""
    H, W = img.shape[:2]
    f = img.astype(np.float32)
    # Lighting: a linear gradient in a random direction plus vignetting.
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    g = ((xx / W - 0.5) * np.cos(ang) + (yy / H - 0.5) * np.sin(ang)) * 2
    strength = rng.uniform(0.05, 0.12 + 0.3 * d)
    r2 = ((xx / W - 0.5) ** 2 + (yy / H - 0.5) ** 2) * 2
    light = (1.0 + strength * g - rng.uniform(0, 0.15 + 0.25 * d) * r2) * rng.uniform(
        1.0 - 0.35 * d, 1.1
    )
    f *= light[..., None]
    # A colour cast from the store lights.
    f *= rng.uniform(1 - 0.08 - 0.08 * d, 1 + 0.08 + 0.08 * d, size=3).astype(np.float32)
    if rng.random() < 0.2 + 0.4 * d:  # glare from a ceiling light
        gx, gy = rng.uniform(0, W), rng.uniform(0, H * 0.7)
        sx, sy = rng.uniform(0.05, 0.2) * W, rng.uniform(0.03, 0.1) * H
        glare = np.exp(-(((xx - gx) / sx) ** 2 + ((yy - gy) / sy) ** 2))
        f += (rng.uniform(60, 120 + 60 * d) * glare)[..., None]
    out: np.ndarray = np.clip(f, 0, 255).astype(np.uint8)
    sigma = rng.uniform(0, 0.3 + 1.3 * d)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    noise = rng.normal(0, rng.uniform(1, 3 + 7 * d), out.shape).astype(np.float32)
    out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    q = int(np.clip(rng.uniform(90 - 45 * d, 95), 30, 95))
    ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
    dec = cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else None
    return np.asarray(dec) if dec is not None else out


def render_frame(
    planogram: Planogram,
    visible_facings: dict[str, int],
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    difficulty: float = 0.4,
) -> tuple[np.ndarray, list[Box]]:
    """The camera simulator's entry point: (BGR image, labels) of the shelf in this state."""
    r = render(planogram, visible_facings, seed, size, difficulty)
    return r.image, r.labels


def to_yolo(labels: list[Box], width: int, height: int) -> str:
    """YOLO label-file text: `cls cx cy w h`, normalised."""
    lines = []
    for b in labels:
        cx, cy = (b.x1 + b.x2) / 2 / width, (b.y1 + b.y2) / 2 / height
        w, h = (b.x2 - b.x1) / width, (b.y2 - b.y1) / height
        lines.append(f"{b.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def sample_scene(seed: int, hard: bool = False) -> tuple[Planogram, dict[str, int], float]:
    """One random dataset scene: planogram, stock state and difficulty.

    Training difficulty is uniform in [0, 1]; `hard` scenes draw from [0.7, 1.25], so part of
    every held-out hard set is harder than anything seen in training."""
    rng = np.random.default_rng([seed, 7919])
    pg = random_planogram("store", f"cam{seed}", seed=int(rng.integers(0, 2**31)))
    stock = random_stock(pg, rng)
    diff = float(rng.uniform(0.7, 1.25) if hard else rng.uniform(0.0, 1.0))
    return pg, stock, diff


def render_dataset(
    out: Path,
    n: int,
    seed: int,
    hard: bool = False,
    val_fraction: float = 0.15,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> dict[str, int]:
    """Write an ultralytics dataset: images/{train,val}, labels/{train,val}, data.yaml."""
    out = Path(out)
    n_val = max(1, int(round(n * val_fraction))) if n > 1 else 0
    counts = {"train": 0, "val": 0, "product": 0, "gap": 0}
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        split = "val" if i >= n - n_val else "train"
        pg, stock, diff = sample_scene(seed * 1_000_003 + i, hard)
        r = render(pg, stock, seed=seed * 1_000_003 + i, size=size, difficulty=diff)
        name = f"{seed}_{i:06d}"
        cv2.imwrite(
            str(out / "images" / split / f"{name}.jpg"), r.image, [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        (out / "labels" / split / f"{name}.txt").write_text(to_yolo(r.labels, *size))
        counts[split] += 1
        for b in r.labels:
            counts[CLASSES[b.cls]] += 1
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    (out / "data.yaml").write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    return counts
