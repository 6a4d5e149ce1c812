"""Read YOLO-format labelled photos (your own, or a public set) as Backroom `product`/`gap` boxes.

Run: `backroom eval-detector --data DIR --json` (scores the detector on DIR) or
`backroom train-detector --data DIR --init models/shelf-gap.pt --out OUT/` (fine-tunes on it).

Accepted layouts (DIR):
- `DIR/images/*.jpg` + `DIR/labels/*.txt` (what `backroom labels export` writes), optionally
  with `DIR/data.yaml` naming the classes;
- `DIR/data.yaml` with `train:`/`val:`/`test:` image folders (a Roboflow or ultralytics export);
- `DIR/{train,valid,val,test}/images` + `.../labels` split folders.

Label lines are `cls cx cy w h` (normalised) or polygons `cls x1 y1 x2 y2 ...` (normalised;
read as their bounding box). Class ids are mapped to Backroom's classes by the dataset's class
names: empty/void/gap/out-of-stock/missing → `gap`, product/item/sku/... → `product`, anything
else is dropped with a warning. A set whose only class is unnamed or not recognised is read as
a single-class empty-space set (→ `gap`). Without a data.yaml, ids are Backroom's own
(0 product, 1 gap).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import yaml

from backroom.vision import CLASSES, GAP, PRODUCT
from backroom.vision.render import Box

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_NAMES = ("train", "valid", "val", "test")
_GAP_WORDS = re.compile(
    r"empty|void|gap|out[\s_-]*of[\s_-]*stock|\boos\b|missing|vacant|no[\s_-]*stock|blank"
)
_PRODUCT_WORDS = re.compile(r"product|item|sku|object|goods|stock|pack|bottle|can\b|box")


class DatasetError(ValueError):
    """A labelled folder Backroom cannot read (clear message; nothing half-read is used)."""


def map_class_name(name: str) -> int | None:
    """Backroom class for a dataset class name, or None (dropped)."""
    n = name.strip().lower()
    if _GAP_WORDS.search(n):
        return GAP
    if _PRODUCT_WORDS.search(n):
        return PRODUCT
    return None


def class_map(names: list[str] | None) -> dict[int, int]:
    """Dataset class id → Backroom class id, from the dataset's class names."""
    if not names:
        return {PRODUCT: PRODUCT, GAP: GAP}
    out: dict[int, int] = {}
    for i, nm in enumerate(names):
        c = map_class_name(str(nm))
        if c is None:
            if len(names) == 1:
                # A single-class export of an empty-space set often carries a project name
                # ("shelf", "0"): the only thing labelled is empty space.
                c = GAP
            else:
                warnings.warn(f"class {i} {nm!r} is neither product nor gap: dropped", stacklevel=2)
                continue
        out[i] = c
    return out


@dataclass
class LabelledImage:
    image: Path
    boxes: list[Box]
    width: int
    height: int


@dataclass
class Dataset:
    root: Path
    items: list[LabelledImage]
    names: list[str] | None
    mapping: dict[int, int]
    dropped: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = {"images": len(self.items), "product": 0, "gap": 0}
        for it in self.items:
            for b in it.boxes:
                c[CLASSES[b.cls]] += 1
        return c


def parse_label_line(line: str, width: int, height: int) -> tuple[int, tuple[float, ...]] | None:
    """(dataset class id, pixel xyxy) of one label line; None for a blank line. A line of 5
    numbers is a box, 7+ (odd) a polygon (its bounding box)."""
    parts = line.split()
    if not parts:
        return None
    try:
        cid = int(float(parts[0]))
        v = [float(x) for x in parts[1:]]
    except ValueError:
        raise DatasetError(f"not a YOLO label line: {line.strip()!r}") from None
    if len(v) == 4:
        cx, cy, w, h = v
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    elif len(v) >= 6 and len(v) % 2 == 0:
        xs, ys = v[0::2], v[1::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    else:
        raise DatasetError(f"label line needs 4 numbers or a polygon: {line.strip()!r}")
    x1, x2 = max(0.0, x1) * width, min(1.0, x2) * width
    y1, y2 = max(0.0, y1) * height, min(1.0, y2) * height
    return cid, (x1, y1, x2, y2)


def _image_dirs(root: Path) -> tuple[list[Path], list[str] | None]:
    """Image folders of a dataset and its class names (None when it names none)."""
    names: list[str] | None = None
    yml = next((p for p in (root / "data.yaml", root / "dataset.yaml") if p.is_file()), None)
    if yml is not None:
        cfg = yaml.safe_load(yml.read_text()) or {}
        raw = cfg.get("names")
        if isinstance(raw, dict):
            names = [str(raw[k]) for k in sorted(raw, key=int)]
        elif isinstance(raw, list):
            names = [str(x) for x in raw]
    if (root / "images").is_dir():
        sub = [root / "images" / s for s in SPLIT_NAMES if (root / "images" / s).is_dir()]
        return (sub or [root / "images"]), names
    dirs = [root / s / "images" for s in SPLIT_NAMES if (root / s / "images").is_dir()]
    if dirs:
        return dirs, names
    raise DatasetError(
        f"{root}: expected images/ + labels/, a data.yaml, or train|valid|test/images folders"
    )


def _label_path(img: Path) -> Path:
    # ultralytics' rule: the last "images" path component becomes "labels".
    parts = list(img.parts)
    k = len(parts) - 1 - parts[::-1].index("images")
    parts[k] = "labels"
    return Path(*parts).with_suffix(".txt")


def load_dataset(
    root: Path | str, splits: Iterable[str] | None = None, names: list[str] | None = None
) -> Dataset:
    """All labelled images under `root` (every split, or only `splits`), boxes in pixels with
    Backroom class ids. `names` (class names of ids 0, 1, ...) overrides the data.yaml's, e.g.
    `["empty"]` for a single-class empty-space set without one. An image without a label file
    has no objects (a valid negative)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    dirs, yaml_names = _image_dirs(root)
    names = names or yaml_names
    if splits is not None:
        want = set(splits)
        dirs = [d for d in dirs if d.name in want or d.parent.name in want]
    mapping = class_map(names)
    items: list[LabelledImage] = []
    dropped: dict[str, int] = {}
    for d in dirs:
        for img in sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS):
            im = cv2.imread(str(img), cv2.IMREAD_UNCHANGED)
            if im is None:
                raise DatasetError(f"{img}: not a readable image")
            h, w = im.shape[:2]
            boxes: list[Box] = []
            lp = _label_path(img)
            if lp.is_file():
                for line in lp.read_text().splitlines():
                    parsed = parse_label_line(line, w, h)
                    if parsed is None:
                        continue
                    cid, (x1, y1, x2, y2) = parsed
                    if cid not in mapping:
                        key = names[cid] if names and 0 <= cid < len(names) else str(cid)
                        dropped[key] = dropped.get(key, 0) + 1
                        continue
                    if x2 - x1 < 1 or y2 - y1 < 1:
                        continue
                    boxes.append(Box(mapping[cid], x1, y1, x2, y2))
            items.append(LabelledImage(img, boxes, w, h))
    if not items:
        raise DatasetError(f"{root}: no images found")
    if dropped:
        warnings.warn(f"{root}: dropped labels of classes {dropped}", stacklevel=2)
    return Dataset(root, items, names, mapping, dropped)


def write_yolo(items: list[LabelledImage], out: Path, split: str, prefix: str = "") -> int:
    """Write items as Backroom-class YOLO boxes under out/images/<split>, out/labels/<split>
    (images linked when possible, else copied). Returns the number written."""
    import os
    import shutil

    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(items):
        stem = f"{prefix}{i:05d}_{it.image.stem}"
        dst = out / "images" / split / f"{stem}{it.image.suffix.lower()}"
        if not dst.exists():
            try:
                os.link(it.image, dst)
            except OSError:
                shutil.copyfile(it.image, dst)
        lines = []
        for b in it.boxes:
            cx, cy = (b.x1 + b.x2) / 2 / it.width, (b.y1 + b.y2) / 2 / it.height
            bw, bh = (b.x2 - b.x1) / it.width, (b.y2 - b.y1) / it.height
            lines.append(f"{b.cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        (out / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n" * bool(lines))
    return len(items)


def split_items(
    ds: Dataset, val_fraction: float = 0.15
) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """(train, val): a set's own split folders when it has them (train → train, every other
    split → val), else every 1/val_fraction-th image (sorted by name) to val."""
    tr: list[LabelledImage] = []
    va: list[LabelledImage] = []
    has_splits = any(
        it.image.parent.name in SPLIT_NAMES or it.image.parent.parent.name in SPLIT_NAMES
        for it in ds.items
    )
    if has_splits:
        for it in ds.items:
            split = (
                it.image.parent.name
                if it.image.parent.name in SPLIT_NAMES
                else it.image.parent.parent.name
            )
            (tr if split == "train" else va).append(it)
        if tr and va:
            return tr, va
        tr, va = [], []
    step = max(2, round(1 / max(val_fraction, 1e-6)))
    for i, it in enumerate(ds.items):
        (va if i % step == step - 1 else tr).append(it)
    return tr, va


def add_pseudo_products(
    items: list[LabelledImage], detector: object, min_conf: float = 0.5, max_overlap: float = 0.3
) -> int:
    """Label products on images of a gap-only set with a detector's confident product boxes
    (those covering no more than `max_overlap` of their area with a labelled gap), so training
    on the set does not teach the model that real products are background. Returns boxes added."""
    import numpy as np

    added = 0
    for it in items:
        img = cv2.imread(str(it.image), cv2.IMREAD_COLOR)
        [dets] = detector.detect([img])  # type: ignore[attr-defined]
        gaps = [b for b in it.boxes if b.cls == GAP]
        for d in dets:
            if d.cls != PRODUCT or d.conf < min_conf:
                continue
            x1, y1, x2, y2 = d.box
            area = max(1e-6, (x2 - x1) * (y2 - y1))
            cover = 0.0
            for g in gaps:
                iw = max(0.0, min(x2, g.x2) - max(x1, g.x1))
                ih = max(0.0, min(y2, g.y2) - max(y1, g.y1))
                cover += iw * ih
            if cover / area <= max_overlap:
                it.boxes.append(Box(PRODUCT, *(float(v) for v in np.asarray(d.box))))
                added += 1
    return added
