"""False-alarm feedback: a person says an alert was wrong; that store×SKU's threshold for the
alert's type becomes one step less sensitive (bounded, logged, reversible with `undo`).

    tuner = FeedbackTuner()
    change = tuner.apply(feedback)            # an AlertFeedback from `alerts.feedback`
    tuner.silent_threshold(base, "S1:A")      # CHECK_SHELF: base x 10^-steps
    tuner.steps("S1:A", "STOCKOUT_RISK")      # the alert rules read the steps (backroom/alerts.py)

Tests: `pytest tests/unit/test_feedback.py`; docs/floor.md. Feedback arrives on the
`alerts.feedback` topic from the dashboard's "false alarm" button and the ingest API.

What one step does, per type (at most MAX_STEPS steps, never below zero):
- CHECK_SHELF: the P(no sale) threshold x 0.1 (a silence must be ten times less likely);
- STOCKOUT_RISK: the horizon x 0.75;
- RESTOCK_SHELF: the predictive part (the shelf runs out within the staff's reaction time, or
  is inside its dynamic minimum) looks 0.75 x as far ahead; at or below the minimum still opens;
- PHANTOM_STOCK: one more consecutive gap frame before it opens;
- other types (OUT_OF_STOCK, REORDER, TRANSFER: facts or orders, not guesses): logged, no change.
Every change is logged (`backroom.feedback`) and kept in `history` with before and after.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backroom.records import AlertFeedback

log = logging.getLogger("backroom.feedback")

MAX_STEPS = 3
TUNABLE = frozenset({"CHECK_SHELF", "STOCKOUT_RISK", "RESTOCK_SHELF", "PHANTOM_STOCK"})
CHECK_SHELF_STEP = 0.1
LOOKAHEAD_STEP = 0.75


@dataclass
class FeedbackTuner:
    """Sensitivity steps per (store×SKU, alert type), from feedback events (idempotent by event_id)."""

    max_steps: int = MAX_STEPS
    levels: dict[tuple[str, str], int] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def steps(self, key: str, alert_type: str) -> int:
        return self.levels.get((key, alert_type), 0)

    def apply(self, fb: AlertFeedback) -> dict[str, Any] | None:
        """Apply one feedback event; the change made (or None: a repeat, an untunable type, or
        already at the bound, which is logged too)."""
        if fb.event_id in self.seen:
            return None
        self.seen.add(fb.event_id)
        key = f"{fb.store_id}:{fb.sku}"
        before = self.steps(key, fb.alert_type)
        if fb.alert_type not in TUNABLE:
            log.info("feedback %s on %s %s (%s): no threshold to tune", fb.verdict, key, fb.alert_type, fb.alert_id)
            return None
        after = min(self.max_steps, before + 1) if fb.verdict == "false_alarm" else max(0, before - 1)
        if after == before:
            log.info("feedback %s on %s %s: already at %d steps (bounds 0..%d)", fb.verdict, key,
                     fb.alert_type, before, self.max_steps)
            return None
        if after:
            self.levels[(key, fb.alert_type)] = after
        else:
            self.levels.pop((key, fb.alert_type), None)
        change = {"ts": fb.ts.isoformat(), "key": key, "alert_type": fb.alert_type, "alert_id": fb.alert_id,
                  "verdict": fb.verdict, "source": fb.source, "steps_before": before, "steps_after": after}
        self.history.append(change)
        log.info("feedback %s on %s %s (%s, %s): sensitivity steps %d -> %d", fb.verdict, key, fb.alert_type,
                 fb.alert_id, fb.source, before, after)
        return change

    def silent_threshold(self, base: float, key: str) -> float:
        return base * CHECK_SHELF_STEP ** self.steps(key, "CHECK_SHELF")

    def type_steps(self, key: str) -> dict[str, int]:
        """The steps of one store×SKU by alert type (what its alert book carries)."""
        return {t: n for (k, t), n in self.levels.items() if k == key}


def apply_to_book(book: Mapping[str, Any] | None, fb: AlertFeedback, keep_ids: int = 32,
                  ) -> tuple[dict[str, Any], FeedbackTuner] | None:
    """One feedback event applied to its store×SKU's alert book: the book with its tuning steps
    and the ids of the last `keep_ids` feedback events applied, and the tuner holding the key's
    steps. None when the book already applied this event (a redelivery changes nothing)."""
    key = f"{fb.store_id}:{fb.sku}"
    new = dict(book or {})
    seen = list(new.get("feedback_ids", []))
    if fb.event_id in seen:
        return None
    tuner = FeedbackTuner(levels={(key, t): n for t, n in (new.get("tuning") or {}).items()})
    change = tuner.apply(fb)
    new["feedback_ids"] = [*seen[-(keep_ids - 1):], fb.event_id]
    if change is not None:
        new["tuning"] = tuner.type_steps(key)
    return new, tuner


def lookahead(steps: int) -> float:
    """The factor a horizon or reaction time is multiplied by after `steps` false alarms."""
    return float(LOOKAHEAD_STEP ** max(0, steps))
