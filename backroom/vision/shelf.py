"""Planogram mapping: detections in one frame → one ShelfObservation per SKU slot.

Used by `VisionPipeline` and `backroom detect --planogram FILE`; evaluated per slot by
`slot_gap_scores` (see `backroom eval-detector`).

Why gap coverage rather than counting products: a `gap` box spans a run of adjacent empty
facings (see render.py), so the number of empty facings in a slot is the width of gap boxes
that overlap the slot divided by the slot's facing width. Product boxes are the cross-check:
they set the confidence and cap the estimate when gaps were missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backroom.records import Planogram, PlanogramSlot, ShelfObservation
from backroom.vision import GAP, PRODUCT
from backroom.vision.detector import Detection

# A gap box must cover this much of a facing's width to count it as empty.
MIN_FACING_COVER = 0.5
# …and overlap the slot's opening vertically by this much (gap boxes span the opening).
MIN_Y_OVERLAP = 0.5


@dataclass(frozen=True)
class SlotReading:
    sku: str
    facings_expected: int
    facings_visible: int
    fill_ratio: float
    confidence: float
    boxes: list[dict[str, Any]]


def _y_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / max(1e-6, min(a[1] - a[0], b[1] - b[0]))


def read_slot(slot: PlanogramSlot, dets: list[Detection], width: int, height: int) -> SlotReading:
    x0, y0, x1, y1 = (
        slot.box[0] * width,
        slot.box[1] * height,
        slot.box[2] * width,
        slot.box[3] * height,
    )
    fw = (x1 - x0) / slot.facings
    gap_cover = 0.0
    gap_confs: list[float] = []
    prod_confs: list[float] = []
    boxes: list[dict[str, Any]] = []
    for d in dets:
        bx0, by0, bx1, by1 = d.box
        inter_x = max(0.0, min(x1, bx1) - max(x0, bx0))
        if inter_x <= 0:
            continue
        if d.cls == GAP:
            if _y_overlap((y0, y1), (by0, by1)) < MIN_Y_OVERLAP or inter_x < 0.25 * fw:
                continue
            gap_cover += inter_x
            gap_confs.append(d.conf)
            boxes.append(d.to_dict())
        elif d.cls == PRODUCT:
            cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
            if x0 <= cx < x1 and y0 <= cy < y1:
                prod_confs.append(d.conf)
                boxes.append(d.to_dict())
    # Round with a threshold: a facing is empty when gap boxes cover MIN_FACING_COVER of it.
    empty = int(gap_cover / fw + (1 - MIN_FACING_COVER))
    empty = max(0, min(slot.facings, empty))
    visible = slot.facings - empty
    seen = gap_confs + prod_confs
    conf = sum(seen) / len(seen) if seen else 0.0
    # Coverage of the slot by anything detected: low when occluded or unreadable.
    explained = min(1.0, (gap_cover + len(prod_confs) * fw) / max(1e-6, x1 - x0))
    return SlotReading(
        sku=slot.sku,
        facings_expected=slot.facings,
        facings_visible=visible,
        fill_ratio=round(visible / slot.facings, 4),
        confidence=round(conf * explained, 4),
        boxes=boxes,
    )


def read_planogram(
    planogram: Planogram, dets: list[Detection], width: int, height: int
) -> list[SlotReading]:
    return [read_slot(s, dets, width, height) for s in planogram.slots]


def observations(
    planogram: Planogram,
    dets: list[Detection],
    width: int,
    height: int,
    ts: datetime,
    frame_event_id: str,
    frame_uri: str | None = None,
) -> list[ShelfObservation]:
    """One ShelfObservation per planogram slot of this frame."""
    return [
        ShelfObservation(
            ts=ts,
            store_id=planogram.store_id,
            sku=r.sku,
            camera_id=planogram.camera_id,
            frame_event_id=frame_event_id,
            facings_expected=r.facings_expected,
            facings_visible=r.facings_visible,
            fill_ratio=r.fill_ratio,
            confidence=r.confidence,
            boxes=r.boxes,
            frame_uri=frame_uri,
        )
        for r in read_planogram(planogram, dets, width, height)
    ]


@dataclass
class SlotScores:
    """Per-slot gap detection: a slot 'has a gap' when at least one facing is empty."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    exact: int = 0  # slots whose visible-facings count is exactly right
    slots: int = 0
    skipped_occluded: int = 0

    def add(self, truth_gap: bool, pred_gap: bool, exact: bool) -> None:
        self.slots += 1
        self.exact += int(exact)
        if truth_gap and pred_gap:
            self.tp += 1
        elif pred_gap:
            self.fp += 1
        elif truth_gap:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot_gap_recall": round(self.recall, 4),
            "slot_gap_precision": round(self.precision, 4),
            "slot_facings_exact": round(self.exact / self.slots, 4) if self.slots else 1.0,
            "slots": self.slots,
            "slots_with_gap": self.tp + self.fn,
            "slots_skipped_occluded": self.skipped_occluded,
        }


def slot_gap_scores(
    planogram: Planogram,
    visible: dict[str, int],
    dets: list[Detection],
    width: int,
    height: int,
    scores: SlotScores | None = None,
    occluded: dict[str, float] | None = None,
    max_occluded: float = 0.3,
) -> SlotScores:
    """Score one frame's slot readings against the rendered truth (accumulates into `scores`).

    Slots more than `max_occluded` hidden by an occluder are skipped (counted): nobody can
    say whether a facing behind a shopper is empty."""
    scores = scores or SlotScores()
    for r, s in zip(read_planogram(planogram, dets, width, height), planogram.slots, strict=True):
        if occluded and occluded.get(s.sku, 0.0) > max_occluded:
            scores.skipped_occluded += 1
            continue
        true_vis = max(0, min(s.facings, visible.get(s.sku, s.facings)))
        scores.add(
            true_vis < s.facings, r.facings_visible < s.facings, r.facings_visible == true_vis
        )
    return scores
