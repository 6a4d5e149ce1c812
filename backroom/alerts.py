"""Alert rules and lifecycle over `inventory.state` (+ shelf observations).

Run: `pytest tests/unit/test_alerts.py`; in the system, `backroom worker` runs these rules.
Domain logic with no Kafka: one `AlertBook` per store×SKU (open alerts and rule memory, kept by
the worker in the `alert-books` table) and `AlertEngine.on_state(book, state)` /
`on_observation(book, gap, observation)`, which return the alerts to send.
`backroom.processing.AlertProcessor` applies the engine to the states the inventory agents
publish (in the same batch, not by reading `inventory.state` back) and to shelf observations.

Lifecycle: a rule's condition starting opens an alert (`open`), a change of severity or of the
recommended action emits `update`, and the condition ending emits `resolved`. There is at most
one open alert per (store, sku, type). Thresholds have hysteresis (an alert resolves at a level
past the one that opened it) so a quantity bouncing around a threshold does not storm.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backroom.budget import expected_lost
from backroom.demand.reorder import band_k, order_quantity
from backroom.feedback import lookahead
from backroom.records import Alert, AlertType, InventoryState, Severity, validated
from backroom.records import shelf_estimate as _shelf_estimate


@dataclass(frozen=True)
class Condition:
    """What a rule found: the alert's content while the condition holds."""

    severity: Severity
    message: str
    action: str
    evidence: dict[str, Any]
    # Changing this (e.g. the quantity to move) is worth an `update`; other evidence is not.
    action_key: str = ""
    # REORDER: units ordered when the alert opens (counted as on order until the delivery is due).
    order_qty: int = 0


@dataclass
class AlertContext:
    """Everything rules may read: the newest state plus what the camera saw lately."""

    state: InventoryState
    gap_streak: int = 0
    last_observation: dict[str, Any] | None = None
    horizon_hours: float = 48.0
    staff_reaction_hours: float = 2.0
    # Orders placed by REORDER alerts and not yet due: [{"qty", "eta", "alert_id"}].
    pending_orders: list[dict[str, Any]] = field(default_factory=list)
    # False-alarm feedback: sensitivity steps by alert type (backroom/feedback.py).
    tuning: dict[str, int] = field(default_factory=dict)


Rule = Callable[[AlertContext, bool], Condition | None]


def _base_evidence(s: InventoryState) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "shelf_qty": s.shelf_qty,
        "backroom_qty": s.backroom_qty,
        "shelf_capacity": s.shelf_capacity,
        "min_shelf_qty": s.min_shelf_qty,
        "demand_per_hour": s.demand_per_hour,
        "state_version": s.version,
    }
    if s.vision_fill is not None:
        ev["vision_fill"] = s.vision_fill
    if s.catalog_missing:
        ev["catalog_missing"] = True
    return ev


def out_of_stock(ctx: AlertContext, is_open: bool) -> Condition | None:
    s = ctx.state
    if s.shelf_qty > 0 or s.backroom_qty > 0:
        return None
    action = f"expedite: order {s.sku} now" + (f" ({s.on_order} on order)" if s.on_order else "")
    return Condition(
        severity="critical",
        message=f"{s.sku} is out of stock in store {s.store_id}: shelf and backroom are empty",
        action=action,
        evidence=_base_evidence(s) | {"on_order": s.on_order or 0},
    )


DEFAULT_BAND_K = 1.65  # z·sqrt(phi) when the state carries no reorder levels (Poisson, z 1.65)


def shelf_estimate(s: InventoryState) -> int:
    """`records.shelf_estimate` of a published state."""
    return _shelf_estimate(s.shelf_qty, s.shelf_seen_max)


def dynamic_shelf_min(s: InventoryState, hours: float) -> float | None:
    """Upper band of the demand over the next `hours`: D + k·sqrt(D), from the state alone.

    D, the mean demand over `hours`: the mean projection says the shelf lasts
    `hours_to_shelf_out` (a walk over the hourly forecast), so D ≈ shelf · hours / that (the
    rate of the walk), and at least the next hour's `demand_per_hour`. k = z·sqrt(phi), the
    forecast's band: the reorder levels carry it (safety stock = z·sqrt(phi·D_L·(1 + D_L/H)),
    `reorder.band_k`), else DEFAULT_BAND_K. None without a projection (no demand forecast)."""
    if s.hours_to_shelf_out is None:
        return None
    rate = s.demand_per_hour or 0.0
    mean = rate * min(hours, 1.0)
    if s.hours_to_shelf_out > 0:
        mean = max(mean, shelf_estimate(s) * hours / s.hours_to_shelf_out)
    if mean <= 0:
        return None
    k = DEFAULT_BAND_K
    if s.safety_stock is not None and s.lead_time_demand:
        k = band_k(s.safety_stock, s.lead_time_demand)
    return mean + k * math.sqrt(mean)


def restock_shelf(ctx: AlertContext, is_open: bool) -> Condition | None:
    s = ctx.state
    shelf = shelf_estimate(s)
    min_qty = s.min_shelf_qty if s.min_shelf_qty is not None else 0
    if s.backroom_qty <= 0:
        return None
    # Hysteresis: open at or below the minimum, stay open until the shelf is clearly above it.
    resolve_above = min_qty + max(1, (s.shelf_capacity - min_qty) // 4)
    low = shelf <= min_qty if not is_open else shelf < resolve_above
    # Raised ahead: the shelf may empty before staff could react. Not only on the mean
    # projection (which says "2 h" when a busy hour empties the shelf in one) but on its upper
    # band: the shelf is at or below the demand over the reaction time plus z·sigma, a dynamic
    # shelf minimum. Once open it holds until that is clearly past (hysteresis).
    reaction = ctx.staff_reaction_hours * (1.5 if is_open else 1.0) * lookahead(ctx.tuning.get("RESTOCK_SHELF", 0))
    dynamic_min = dynamic_shelf_min(s, reaction)
    # A fast mover whose full shelf is within that band (it empties before staff could come
    # back even when full, records drifting above capacity included) keeps its alert open: a
    # standing "top up on every pass" while that lasts, instead of one alert per refill.
    standing = dynamic_min is not None and dynamic_min >= s.shelf_capacity
    shelf_out_soon = (shelf < s.shelf_capacity or standing) and (
        (s.hours_to_shelf_out is not None and s.hours_to_shelf_out <= reaction)
        or (dynamic_min is not None and shelf <= dynamic_min)
    )
    gap_seen = ctx.gap_streak >= 1 and shelf <= min_qty + 1
    if not (low or shelf_out_soon or gap_seen):
        return None
    move = max(1, min(s.backroom_qty, s.shelf_capacity - shelf))
    if shelf == 0:
        severity: Severity = "high"
    elif low:
        severity = "medium"
    else:
        severity = "low"
    why = "the shelf is empty" if shelf == 0 else f"the shelf has {shelf} left"
    if shelf_out_soon and not low:
        why = f"the shelf runs out in {s.hours_to_shelf_out:.1f} h"
    if shelf < s.shelf_qty:
        why += f" as the camera sees it (records say {s.shelf_qty})"
    evidence = _base_evidence(s) | {"hours_to_shelf_out": s.hours_to_shelf_out}
    if s.shelf_seen_max is not None:
        evidence["shelf_seen_max"] = s.shelf_seen_max
    if dynamic_min is not None:
        evidence["dynamic_shelf_min"] = round(dynamic_min, 2)
    if ctx.last_observation is not None:
        evidence["observation"] = ctx.last_observation
    return Condition(
        severity=severity,
        message=f"Restock {s.sku} in store {s.store_id}: {why}, the backroom has {s.backroom_qty}",
        action=f"move {move} units of {s.sku} from the backroom to the shelf",
        evidence=evidence,
        action_key=severity,
    )


def phantom_stock(ctx: AlertContext, is_open: bool) -> Condition | None:
    s = ctx.state
    # Records must say there is stock on the shelf while the camera keeps seeing a gap.
    if s.shelf_qty <= 0 or ctx.gap_streak < 2 + ctx.tuning.get("PHANTOM_STOCK", 0):
        return None
    evidence = _base_evidence(s) | {"consecutive_gap_frames": ctx.gap_streak}
    if ctx.last_observation is not None:
        evidence["observation"] = ctx.last_observation
    return Condition(
        severity="medium",
        message=(
            f"Phantom stock? Records say {s.shelf_qty} of {s.sku} on the shelf in store "
            f"{s.store_id}, the camera saw a gap in {ctx.gap_streak} frames in a row"
        ),
        action=f"recount {s.sku} on the shelf and correct the record",
        evidence=evidence,
    )


STOCKOUT_DEMAND_MARGIN = 0.25  # STOCKOUT_RISK opens if stock runs out at 75 % of the forecast


def _hours_between(a: datetime, b: str) -> float:
    return (datetime.fromisoformat(b) - a).total_seconds() / 3600


def stockout_risk(ctx: AlertContext, is_open: bool) -> Condition | None:
    """Shelf and backroom together run out (walking the forecast) within the horizon, and no
    order placed by a REORDER alert is on the shelf before that moment (its ETA plus the staff's
    reaction time: a delivery lands in the backroom, and the shelf can empty before anyone
    moves it). An open risk stays open through the records reaching zero (OUT_OF_STOCK opens
    then): records drift from the shelf, and the order or expedite it asks for is still due."""
    s = ctx.state
    hours = s.hours_to_stockout
    records_empty = s.shelf_qty + s.backroom_qty <= 0
    if records_empty:
        if not is_open:
            return None  # empty now is OUT_OF_STOCK's
        hours = 0.0  # held open until stock is recorded again (a receive, a move, a count)
    if hours is None:
        return None  # no projection, no risk claimed
    # Opens when the stock runs out within the horizon even if demand comes in a quarter below
    # the forecast (a 48-h sum errs by its level, not only by Poisson noise: a projection at
    # the horizon's edge is a coin flip). Hysteresis: resolves a quarter beyond the horizon.
    horizon = ctx.horizon_hours * lookahead(ctx.tuning.get("STOCKOUT_RISK", 0))
    if hours > horizon * (1.25 if is_open else 1.0 - STOCKOUT_DEMAND_MARGIN):
        return None
    arriving = sorted(_hours_between(s.ts, o["eta"]) for o in ctx.pending_orders)
    if arriving and arriving[0] + ctx.staff_reaction_hours <= hours:
        return None  # a delivery is on the shelf before the stock runs out
    severity: Severity = "high" if hours <= 8 else "medium" if hours <= 24 else "low"
    evidence = _base_evidence(s) | {
        "hours_to_stockout": hours,
        "horizon_hours": ctx.horizon_hours,
        "on_order": s.on_order or 0,
        "pending_orders": ctx.pending_orders,
        "reorder_point": s.reorder_point,
    }
    if arriving:
        action = f"expedite the open order of {s.sku}: it is due in {arriving[0]:.0f} h, stock lasts {hours:.0f} h"
    else:
        action = f"order {s.sku} now: stock lasts about {hours:.0f} h at the forecast demand"
    if records_empty:
        message = f"{s.sku} in store {s.store_id}: the records say shelf and backroom are empty"
    else:
        message = (f"{s.sku} in store {s.store_id} is projected to run out in {hours:.1f} h "
                   f"(shelf {s.shelf_qty}, backroom {s.backroom_qty})")
    return Condition(
        severity=severity,
        message=message,
        action=action,
        evidence=evidence,
        action_key=severity,
    )


def reorder(ctx: AlertContext, is_open: bool) -> Condition | None:
    """Inventory position (shelf + backroom + on order + orders placed by REORDER and not yet
    due) at or below the reorder point: order up to the order-up-to level in whole cases.

    Opening the alert counts as placing the order (docs/demand.md, "On order"): its quantity
    joins the position until its ETA + grace, so the next state resolves the alert and no
    second order is raised for the same need."""
    s = ctx.state
    if s.reorder_point is None or s.order_up_to is None:
        return None
    pending = sum(int(o["qty"]) for o in ctx.pending_orders)
    position = shelf_estimate(s) + s.backroom_qty + (s.on_order or 0) + pending
    if position > s.reorder_point:
        return None
    pack = s.case_pack or 1
    qty = order_quantity(position, s.order_up_to, pack)
    lead = s.lead_time_hours or 0.0
    late = s.hours_to_stockout is not None and s.hours_to_stockout < lead
    severity: Severity = "high" if late else "medium"
    evidence = _base_evidence(s) | {
        "position": position,
        "on_order": s.on_order or 0,
        "pending_orders": ctx.pending_orders,
        "reorder_point": s.reorder_point,
        "order_up_to": s.order_up_to,
        "lead_time_hours": lead,
        "lead_time_demand": s.lead_time_demand,
        "safety_stock": s.safety_stock,
        "hours_to_stockout": s.hours_to_stockout,
        "case_pack": pack,
        "order_qty": qty,
    }
    why = " (stock runs out before a delivery can arrive)" if late else ""
    return Condition(
        severity=severity,
        message=(
            f"Reorder {s.sku} in store {s.store_id}: position {position} is at or below the "
            f"reorder point {s.reorder_point:.1f}{why}"
        ),
        action=f"order {qty} units of {s.sku} ({qty // pack} cases of {pack})",
        evidence=evidence,
        action_key=severity,
        order_qty=qty,
    )


DEFAULT_RULES: dict[AlertType, Rule] = {
    "OUT_OF_STOCK": out_of_stock,
    "RESTOCK_SHELF": restock_shelf,
    "PHANTOM_STOCK": phantom_stock,
    # REORDER before STOCKOUT_RISK: an order placed now is due after the lead time, and the
    # risk rule must see it to tell "covered" from "runs out before the delivery".
    "REORDER": reorder,
    "STOCKOUT_RISK": stockout_risk,
}


@dataclass
class AlertBook:
    """Open alerts of one store×SKU plus what the rules remember between states."""

    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_version: int = -1
    gap_streak: int = 0
    last_observation: dict[str, Any] | None = None
    # The newest state seen, for re-evaluating on an observation. Kept as the record until the
    # book is written: most books are not written after a state (see processing._book_changed),
    # and dumping every state cost ~5 µs per event.
    last_state: InventoryState | dict[str, Any] | None = None
    # Recent frame event ids: a redelivered observation must not lengthen the gap streak.
    frames: list[str] = field(default_factory=list)
    # Orders placed by REORDER alerts, counted as on order until ETA + grace.
    orders: list[dict[str, Any]] = field(default_factory=list)
    # False-alarm feedback: sensitivity steps by alert type (backroom/feedback.py).
    tuning: dict[str, int] = field(default_factory=dict)
    feedback_ids: list[str] = field(default_factory=list)  # the last feedback events applied

    def to_dict(self) -> dict[str, Any]:
        out = {
            "open": self.open,
            "last_version": self.last_version,
            "gap_streak": self.gap_streak,
            "last_observation": self.last_observation,
            "last_state": self.last_state.to_dict() if isinstance(self.last_state, InventoryState)
            else self.last_state,
            "frames": self.frames,
            "orders": self.orders,
        }
        if self.tuning:  # rare: books without feedback stay as they were
            out["tuning"] = self.tuning
        if self.feedback_ids:
            out["feedback_ids"] = self.feedback_ids
        return out

    def changed_since(self, stored: dict[str, Any]) -> bool:
        """Whether anything but `last_version` and `last_state` (they change with every state)
        differs from the book as stored (`to_dict`'s form)."""
        return (self.open != stored.get("open", {}) or self.gap_streak != stored.get("gap_streak", 0)
                or self.last_observation != stored.get("last_observation")
                or self.frames != stored.get("frames", []) or self.orders != stored.get("orders", [])
                or self.tuning != stored.get("tuning", {})
                or self.feedback_ids != stored.get("feedback_ids", []))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AlertBook:
        if not data:
            return cls()
        return cls(
            open=dict(data.get("open", {})),
            last_version=data.get("last_version", -1),
            gap_streak=data.get("gap_streak", 0),
            last_observation=data.get("last_observation"),
            last_state=data.get("last_state"),
            frames=list(data.get("frames", [])),
            orders=list(data.get("orders", [])),
            tuning=dict(data.get("tuning", {})),
            feedback_ids=list(data.get("feedback_ids", [])),
        )


def alert_id(store_id: str, sku: str, type_: str, opened_ts: str) -> str:
    """Deterministic: replaying the same events gives the same ids."""
    return hashlib.sha1(f"{store_id}:{sku}:{type_}:{opened_ts}".encode()).hexdigest()[:20]


class AlertEngine:
    def __init__(self, rules: dict[AlertType, Rule] | None = None, horizon_hours: float = 48.0,
                 staff_reaction_hours: float = 2.0, order_grace_hours: float = 2.0,
                 default_lead_hours: float = 48.0) -> None:
        self.rules = dict(DEFAULT_RULES if rules is None else rules)
        self.horizon_hours = horizon_hours
        self.staff_reaction_hours = staff_reaction_hours
        self.order_grace_hours = order_grace_hours
        self.default_lead_hours = default_lead_hours

    def on_state(self, book: AlertBook, state: InventoryState) -> list[Alert]:
        """Evaluate every rule on a new state; returns the lifecycle events to publish.

        A state whose version is not newer than the last one seen is a redelivery: ignored.
        """
        version = state.version if state.version is not None else book.last_version + 1
        if version <= book.last_version:
            return []
        book.last_version = version
        book.last_state = state
        return self._evaluate(book, state)

    def on_observation(self, book: AlertBook, gap: bool, observation: dict[str, Any]) -> list[Alert]:
        """Track consecutive gap frames for a SKU slot, then re-evaluate on the last state."""
        frame_id = str(observation.get("frame_event_id"))
        if frame_id in book.frames:
            return []
        book.frames = [*book.frames[-15:], frame_id]
        book.gap_streak = book.gap_streak + 1 if gap else 0
        book.last_observation = observation
        state = book.last_state
        if state is None:
            return []
        if not isinstance(state, InventoryState):
            state = book.last_state = InventoryState.model_validate(_revive(state))
        return self._evaluate(book, state)

    def _evaluate(self, book: AlertBook, state: InventoryState) -> list[Alert]:
        ts: str | None = None  # the stamp of an alert opened now; most states open none
        if book.orders:
            # A delivery is due at its ETA; after a grace the receive scan is in the quantities.
            cutoff = state.ts - timedelta(hours=self.order_grace_hours)
            book.orders = [o for o in book.orders if datetime.fromisoformat(o["eta"]) > cutoff]
        ctx = AlertContext(
            state=state,
            gap_streak=book.gap_streak,
            last_observation=book.last_observation,
            horizon_hours=self.horizon_hours,
            staff_reaction_hours=self.staff_reaction_hours,
            pending_orders=book.orders,  # the same list: an order placed by REORDER counts at once
            tuning=book.tuning,
        )
        out: list[Alert] = []
        for type_, rule in self.rules.items():
            current = book.open.get(type_)
            cond = rule(ctx, current is not None)
            if cond is None and current is None:
                continue
            if cond is None:
                assert current is not None
                del book.open[type_]
                out.append(self._alert(state, type_, current["alert_id"], "resolved", current["severity"],
                                       f"Resolved: {current['message']}", "none", _base_evidence(state)))
            elif current is None:
                ts = ts or state.ts.isoformat()
                aid = alert_id(state.store_id, state.sku, type_, ts)
                book.open[type_] = {"alert_id": aid, "opened": ts, "severity": cond.severity,
                                    "message": cond.message, "action_key": cond.action_key}
                if cond.order_qty > 0:
                    eta = state.ts + timedelta(hours=float(state.lead_time_hours or 0.0))
                    book.orders.append({"qty": cond.order_qty, "eta": eta.isoformat(), "alert_id": aid})
                out.append(self._alert(state, type_, aid, "open", cond.severity, cond.message,
                                       cond.action, self._costed(type_, state, cond.evidence)))
            elif cond.severity != current["severity"] or cond.action_key != current["action_key"]:
                # A new dict, not an update in place: the stored book shares these dicts, and
                # an in-place change would not show as a change, so the book would not be written.
                book.open[type_] = {**current, "severity": cond.severity, "message": cond.message,
                                    "action_key": cond.action_key}
                out.append(self._alert(state, type_, current["alert_id"], "update", cond.severity,
                                       cond.message, cond.action, self._costed(type_, state, cond.evidence)))
        return out

    def _costed(self, type_: str, state: InventoryState, evidence: dict[str, Any]) -> dict[str, Any]:
        """The evidence plus `expected_lost` (units and value if nobody acts; backroom/budget.py)."""
        lost = expected_lost(type_, state.__dict__, reaction_hours=self.staff_reaction_hours,
                             default_lead_hours=self.default_lead_hours, evidence=evidence)
        return evidence | {"expected_lost": lost}

    @staticmethod
    def _alert(state: InventoryState, type_: str, aid: str, status: str, severity: str, message: str,
               action: str, evidence: dict[str, Any]) -> Alert:
        return validated(
            Alert,
            {
                "alert_id": aid,
                "ts": state.ts,
                "store_id": state.store_id,
                "sku": state.sku,
                "type": type_,
                "status": status,
                "severity": severity,
                "message": message,
                "action": action,
                "evidence": evidence,
            }
        )


def _revive(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if isinstance(out.get("ts"), str):
        out["ts"] = datetime.fromisoformat(out["ts"])
    return out
