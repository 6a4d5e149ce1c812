"""Labels from the floor: camera frames with a person's corrections, kept as YOLO training data.

    store = LabelStore(settings.data_dir / "labels", settings.frames_dir)
    saved = store.save(LabelRequest(frame_uri="S1/cam1/f1.jpg", frame_event_id="fr-1", ...))
    store.export(Path("/tmp/store-labels"))   # or: backroom labels export /tmp/store-labels

The dashboard's evidence panel posts what a person saw and changed (`POST /api/labels`); this
class checks it and writes one example per frame:

    <root>/images/<id>.jpg|png   the frame's bytes, copied as they are (no re-encoding)
    <root>/labels/<id>.txt       one YOLO line per box: `class cx cy w h`, normalised 0..1,
                                 classes in the detector's order (0 product, 1 gap)
    <root>/meta/<id>.json        who, when (event time), which frame, what was changed
    <root>/data.yaml             path, train, val, names: the folder is itself a YOLO dataset

The label file holds the detector's product boxes, its gap boxes less the ones marked wrong,
and the gaps the person drew. `<id>` is derived from store, camera and the frame's event id, so
saving the same frame again replaces its example. The sidecar is written last: an example
without one (a crash half-way) is not listed or exported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backroom.records import InvalidEvent
from backroom.vision import CLASSES, GAP, PRODUCT
from backroom.vision.frames import decode_image, image_header, read_frame_bytes, resolve_frame_path

MAX_DRAWN = 50  # gaps a person may draw on one frame
MAX_WRONG = 200
MAX_BOXES = 500  # detector boxes considered for one frame
MIN_SIDE_PX = 2.0  # a drawn box thinner than this is a slip of the mouse, not a gap
EDGE_TOL_PX = 1.0  # how far a drawn box may poke past the image edge (then clipped)
MATCH_TOL_PX = 0.6  # a "wrong" box names a detector gap box by its coordinates (0.1 px rounding)
IMAGE_EXT = {"jpeg": ".jpg", "png": ".png"}
SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class LabelError(ValueError):
    """A label request that cannot be saved; `status` is the HTTP answer it deserves."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Box:
    cls: int
    x0: float
    y0: float
    x1: float
    y1: float

    def yolo(self, width: int, height: int) -> str:
        cx = (self.x0 + self.x1) / 2 / width
        cy = (self.y0 + self.y1) / 2 / height
        w = (self.x1 - self.x0) / width
        h = (self.y1 - self.y0) / height
        return f"{self.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"

    def as_list(self) -> list[float]:
        return [round(self.x0, 1), round(self.y0, 1), round(self.x1, 1), round(self.y1, 1)]


@dataclass
class LabelRequest:
    """One frame and the person's corrections. Detector boxes are `{cls, box: [x0,y0,x1,y1]}`
    in image pixels (as in `shelf.observations`); `wrong` names detector gap boxes by their
    coordinates; `drawn` are new gap boxes in pixels (`units="px"`) or 0..1 (`units="norm"`)."""

    frame_uri: str
    frame_event_id: str
    store_id: str
    camera_id: str
    boxes: Sequence[dict[str, Any]]
    wrong: Sequence[Sequence[float]] = ()
    drawn: Sequence[Sequence[float]] = ()
    units: str = "px"
    frame_ts: str | None = None  # event time of the frame
    labelled_ts: str | None = None  # event time when labelled (the dashboard's newest ts)
    sku: str | None = None
    alert_id: str | None = None
    by: str = "operator"


@dataclass
class SavedLabel:
    id: str
    image: Path
    label: Path
    meta: dict[str, Any]


@dataclass
class ExportSummary:
    dest: Path
    images: int = 0
    boxes: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CLASSES})
    drawn: int = 0
    wrong: int = 0
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "images": self.images,
            "boxes": dict(self.boxes),
            "drawn_gaps": self.drawn,
            "wrong_gaps_dropped": self.wrong,
            "skipped": self.skipped,
            "data_yaml": str(self.dest / "data.yaml"),
        }


def example_id(store_id: str, camera_id: str, frame_event_id: str) -> str:
    """Stable per frame, safe as a file name whatever the ids contain."""
    digest = hashlib.sha256(f"{store_id}\0{camera_id}\0{frame_event_id}".encode()).hexdigest()
    return f"{SAFE.sub('_', store_id)[:32]}-{SAFE.sub('_', camera_id)[:32]}-{digest[:16]}"


def data_yaml(root: Path) -> str:
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    # One folder, no held-out split: hold frames out yourself when measuring a fine-tune.
    return f"path: {root.resolve()}\ntrain: images\nval: images\nnames:\n{names}\n"


def read_yolo_labels(path: Path) -> list[tuple[int, float, float, float, float]]:
    """The boxes of one YOLO label file (`class cx cy w h` per line)."""
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            c, *v = line.split()
            out.append((int(c), float(v[0]), float(v[1]), float(v[2]), float(v[3])))
    return out


def _write_atomic(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def _numbers(raw: Any, what: str) -> tuple[float, float, float, float]:
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        raise LabelError(f"{what} must be [x0, y0, x1, y1]")
    try:
        vals = tuple(float(v) for v in raw)
    except (TypeError, ValueError):
        raise LabelError(f"{what} must hold four numbers") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in vals):
        raise LabelError(f"{what} must hold finite numbers")
    x0, y0, x1, y1 = vals
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


class LabelStore:
    """Labelled frames under `root` (default `<data_dir>/labels`); frames only from `frame_root`."""

    def __init__(
        self,
        root: Path,
        frame_root: Path,
        max_frame_bytes: int = 20_000_000,
        max_frame_pixels: int = 25_000_000,
    ) -> None:
        self.root = Path(root)
        self.frame_root = Path(frame_root)
        self.max_frame_bytes = max_frame_bytes
        self.max_frame_pixels = max_frame_pixels
        # One writer at a time: image, labels and sidecar of a frame change together.
        self._lock = threading.Lock()

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def labels_dir(self) -> Path:
        return self.root / "labels"

    @property
    def meta_dir(self) -> Path:
        return self.root / "meta"

    # ---- saving --------------------------------------------------------------------------------
    def _detector_boxes(self, raw: Iterable[dict[str, Any]], w: int, h: int) -> list[Box]:
        boxes: list[Box] = []
        seen: set[tuple[int, tuple[float, ...]]] = set()
        for i, b in enumerate(raw):
            if i >= MAX_BOXES:
                raise LabelError(f"more than {MAX_BOXES} detector boxes on one frame")
            if not isinstance(b, dict) or b.get("cls") not in CLASSES:
                raise LabelError(f"detector box {i} needs cls 'product' or 'gap'")
            x0, y0, x1, y1 = _numbers(b.get("box"), f"detector box {i}")
            # The detector's own boxes may overhang the frame a little: clip them.
            x0, x1 = max(0.0, x0), min(float(w), x1)
            y0, y1 = max(0.0, y0), min(float(h), y1)
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            box = Box(CLASSES.index(b["cls"]), x0, y0, x1, y1)
            key = (box.cls, tuple(box.as_list()))
            if key not in seen:
                seen.add(key)
                boxes.append(box)
        return boxes

    def _drawn_box(self, raw: Sequence[float], units: str, w: int, h: int, i: int) -> Box:
        x0, y0, x1, y1 = _numbers(raw, f"drawn box {i}")
        if units == "norm":
            if min(x0, y0) < -1e-3 or max(x1, y1) > 1 + 1e-3:
                raise LabelError(f"drawn box {i} {list(raw)} is outside the image (0..1)")
            x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
        elif min(x0, y0) < -EDGE_TOL_PX or x1 > w + EDGE_TOL_PX or y1 > h + EDGE_TOL_PX:
            raise LabelError(f"drawn box {i} {list(raw)} is outside the {w}x{h} image")
        x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
        if x1 - x0 < MIN_SIDE_PX or y1 - y0 < MIN_SIDE_PX:
            raise LabelError(
                f"drawn box {i} is degenerate: {x1 - x0:.1f}x{y1 - y0:.1f} px "
                f"(at least {MIN_SIDE_PX:g} px a side)"
            )
        return Box(GAP, x0, y0, x1, y1)

    def save(self, req: LabelRequest) -> SavedLabel:
        """Check the request, then write image, labels and sidecar; LabelError says why not."""
        if req.units not in ("px", "norm"):
            raise LabelError("units must be 'px' or 'norm'")
        if len(req.drawn) > MAX_DRAWN:
            raise LabelError(f"at most {MAX_DRAWN} drawn boxes per frame")
        if len(req.wrong) > MAX_WRONG:
            raise LabelError(f"at most {MAX_WRONG} wrong boxes per frame")
        if not req.frame_event_id or not req.store_id or not req.camera_id:
            raise LabelError("frame_event_id, store_id and camera_id are required")
        try:
            path = resolve_frame_path(req.frame_uri, self.frame_root)
            data = read_frame_bytes(path, self.max_frame_bytes)
            kind, _, _ = image_header(data)
            img = decode_image(data, self.max_frame_pixels)
        except InvalidEvent as exc:
            raise LabelError(exc.reason, 404 if "not found" in exc.reason else 400) from None
        ext = IMAGE_EXT.get(kind)
        if ext is None:
            raise LabelError(f"unsupported image type {kind!r}", 415)
        h, w = img.shape[:2]

        detector = self._detector_boxes(req.boxes, w, h)
        gaps = [b for b in detector if b.cls == GAP]
        wrong: set[int] = set()
        for i, raw in enumerate(req.wrong):
            x0, y0, x1, y1 = _numbers(raw, f"wrong box {i}")
            # Named as the page saw it: clip it as the detector's boxes were clipped.
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
            match = [
                j
                for j, g in enumerate(gaps)
                if max(abs(g.x0 - x0), abs(g.y0 - y0), abs(g.x1 - x1), abs(g.y1 - y1))
                <= MATCH_TOL_PX
            ]
            if not match:
                raise LabelError(f"wrong box {i} {list(raw)} is not one of this frame's gap boxes")
            wrong.add(match[0])
        drawn = [self._drawn_box(b, req.units, w, h, i) for i, b in enumerate(req.drawn)]
        kept_gaps = [g for j, g in enumerate(gaps) if j not in wrong]
        products = [b for b in detector if b.cls == PRODUCT]

        ident = example_id(req.store_id, req.camera_id, req.frame_event_id)
        with self._lock:
            return self._write(ident, ext, data, w, h, req, products, gaps, sorted(wrong), kept_gaps, drawn)

    def _write(self, ident: str, ext: str, data: bytes, w: int, h: int, req: LabelRequest,
               products: list[Box], gaps: list[Box], wrong: list[int], kept_gaps: list[Box],
               drawn: list[Box]) -> SavedLabel:
        final = products + kept_gaps + drawn
        for d in (self.images_dir, self.labels_dir, self.meta_dir):
            d.mkdir(parents=True, exist_ok=True)
        image = self.images_dir / f"{ident}{ext}"
        for other in IMAGE_EXT.values():  # a re-save in another format must not leave two
            if other != ext:
                (self.images_dir / f"{ident}{other}").unlink(missing_ok=True)
        _write_atomic(image, data)
        label = self.labels_dir / f"{ident}.txt"
        _write_atomic(label, "".join(b.yolo(w, h) + "\n" for b in final).encode())
        meta = {
            "id": ident,
            "image": image.name,
            "label": label.name,
            "width": w,
            "height": h,
            "frame_uri": req.frame_uri,
            "frame_event_id": req.frame_event_id,
            "frame_ts": req.frame_ts,
            "labelled_ts": req.labelled_ts,
            "store_id": req.store_id,
            "camera_id": req.camera_id,
            "sku": req.sku,
            "alert_id": req.alert_id,
            "by": req.by,
            "classes": list(CLASSES),
            "counts": {"product": len(products), "gap": len(kept_gaps) + len(drawn)},
            "changes": {
                "wrong_gaps": [gaps[j].as_list() for j in wrong],
                "drawn_gaps": [b.as_list() for b in drawn],
            },
        }
        _write_atomic(self.meta_dir / f"{ident}.json", json.dumps(meta, indent=1).encode())
        _write_atomic(self.root / "data.yaml", data_yaml(self.root).encode())
        return SavedLabel(ident, image, label, meta)

    # ---- reading -------------------------------------------------------------------------------
    def examples(self) -> list[dict[str, Any]]:
        """Every complete example's sidecar, newest first (by event time, then id)."""
        out: list[dict[str, Any]] = []
        if not self.meta_dir.is_dir():
            return out
        for p in self.meta_dir.glob("*.json"):
            try:
                meta = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if (self.images_dir / str(meta.get("image"))).is_file() and (
                self.labels_dir / str(meta.get("label"))
            ).is_file():
                out.append(meta)
        out.sort(key=lambda m: (m.get("labelled_ts") or "", m.get("frame_ts") or "", m["id"]),
                 reverse=True)
        return out

    def summary(self, recent: int = 20) -> dict[str, Any]:
        ex = self.examples()
        boxes = {c: sum(int(m.get("counts", {}).get(c, 0)) for m in ex) for c in CLASSES}
        return {
            "count": len(ex),
            "boxes": boxes,
            "root": str(self.root),
            "recent": ex[:recent],
        }

    # ---- export --------------------------------------------------------------------------------
    def export(self, dest: Path) -> ExportSummary:
        """Copy every example into `dest` as a YOLO folder (images/, labels/, data.yaml)."""
        dest = Path(dest)
        root = self.root.resolve()
        target = dest.resolve()
        if target == root or target.is_relative_to(root):
            raise LabelError(f"export folder {dest} is inside the label store {self.root}", 400)
        out = ExportSummary(dest)
        (dest / "images").mkdir(parents=True, exist_ok=True)
        (dest / "labels").mkdir(parents=True, exist_ok=True)
        for meta in self.examples():
            image = self.images_dir / meta["image"]
            label = self.labels_dir / meta["label"]
            try:
                boxes = read_yolo_labels(label)
                if any(not 0 <= b[0] < len(CLASSES) for b in boxes):
                    raise ValueError("class index out of range")
            except (OSError, ValueError, IndexError):
                out.skipped.append(meta["id"])
                continue
            shutil.copyfile(image, dest / "images" / image.name)
            shutil.copyfile(label, dest / "labels" / label.name)
            out.images += 1
            for b in boxes:
                out.boxes[CLASSES[b[0]]] += 1
            changes = meta.get("changes", {})
            out.drawn += len(changes.get("drawn_gaps", []))
            out.wrong += len(changes.get("wrong_gaps", []))
        (dest / "data.yaml").write_text(data_yaml(dest))
        return out
