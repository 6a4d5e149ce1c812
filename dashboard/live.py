"""The dashboard's live view: snapshot store, alert lifecycle, heatmap, coalesced deltas.

    pytest tests/unit/test_dashboard_live.py

Plain Python, no Kafka and no FastAPI: `consumers/ws_bridge.py` feeds it decoded records from
`inventory.state`, `alerts` and `shelf.observations`; `dashboard/server.py` asks it for a
`snapshot()` when a page connects and `drain()`s coalesced deltas every flush interval. Between
two drains only the latest value per key survives (store×SKU for state and observations,
alert_id for alerts, store×category for heatmap cells), so the cost of a flush depends on how
many keys changed, not on how many events arrived.

Time is event time: `now` is the newest `ts` seen on any record, and alert ages are computed
against it, so a replayed history looks the same as it did live.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backroom.records import SEVERITY_RANK

UNCATEGORIZED = "uncategorised"  # the same word the worker uses for SKUs with no catalog entry
# Fields of inventory.state the page shows; anything else in the record is dropped to keep
# snapshots and deltas small.
STATE_FIELDS = (
    "ts", "store_id", "sku", "shelf_qty", "backroom_qty", "shelf_capacity", "vision_fill",
    "demand_per_hour", "hours_to_shelf_out", "hours_to_stockout", "on_order", "category",
    "min_shelf_qty", "catalog_missing", "version",
)
OBSERVATION_FIELDS = (
    "ts", "store_id", "sku", "camera_id", "frame_event_id", "facings_expected",
    "facings_visible", "fill_ratio", "confidence", "boxes", "frame_uri",
)


def parse_ts(value: Any) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp (or a datetime); None when unusable."""
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo else None


def sku_risk(state: dict[str, Any], horizon_hours: float = 48.0) -> float:
    """0 (fine) .. 1 (out of stock) for one store×SKU: what the heatmap colours by."""
    shelf = state.get("shelf_qty") or 0
    backroom = state.get("backroom_qty") or 0
    if shelf <= 0 and backroom <= 0:
        return 1.0
    if shelf <= 0:
        return 0.8
    min_qty = state.get("min_shelf_qty")
    to_shelf_out = state.get("hours_to_shelf_out")
    if (min_qty is not None and shelf <= min_qty) or (
        to_shelf_out is not None and to_shelf_out <= 2
    ):
        return 0.6
    to_stockout = state.get("hours_to_stockout")
    if to_stockout is not None and to_stockout <= horizon_hours:
        return 0.4
    return 0.0


@dataclass
class Cell:
    """One heatmap cell: a store × category."""

    store_id: str
    category: str
    skus: set[str] = field(default_factory=set)

    def summary(self, view: LiveView) -> dict[str, Any]:
        n = len(self.skus)
        on_shelf = 0
        risk = 0.0
        for sku in self.skus:
            st = view.states.get(f"{self.store_id}:{sku}")
            if st is None:
                continue
            if (st.get("shelf_qty") or 0) > 0:
                on_shelf += 1
            risk += sku_risk(st, view.horizon_hours)
        alerts = view.open_alerts_by_sku_count(self.store_id, self.skus)
        return {
            "store_id": self.store_id,
            "category": self.category,
            "skus": n,
            "availability": round(on_shelf / n, 4) if n else 1.0,
            "risk": round(risk / n, 4) if n else 0.0,
            "open_alerts": alerts[0],
            "max_severity": alerts[1],
        }


class LiveView:
    """Latest state per store×SKU, alerts by id with lifecycle, heatmap cells, pending deltas."""

    def __init__(self, horizon_hours: float = 48.0, keep_resolved: int = 200,
                 alert_budget: int | None = None) -> None:
        self.horizon_hours = horizon_hours
        self.keep_resolved = keep_resolved
        # Per store, the feed shows this many open alerts, most costly first (backroom/budget.py);
        # the page puts the rest in its "more" list. None: all in the feed.
        self.alert_budget = alert_budget
        self.states: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, dict[str, Any]] = {}
        # Open (and update-d) alerts by id, plus the most recent resolved ones for the feed.
        self.alerts: dict[str, dict[str, Any]] = {}
        self.resolved: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Open alert ids per store×SKU, so a heatmap cell counts its alerts without a scan.
        self._alerts_by_sku: dict[str, set[str]] = {}
        self.cells: dict[tuple[str, str], Cell] = {}
        self._cell_of: dict[str, tuple[str, str]] = {}
        self.now: float | None = None  # newest event time seen (epoch seconds)
        self.seq = 0  # number of deltas drained; a page seeing a gap asks for a snapshot
        self.counts = {"states": 0, "alerts": 0, "observations": 0, "ignored": 0}
        self._dirty_states: dict[str, dict[str, Any]] = {}
        self._dirty_obs: dict[str, dict[str, Any]] = {}
        self._dirty_alerts: dict[str, dict[str, Any]] = {}
        self._dirty_cells: set[tuple[str, str]] = set()

    # --- input -------------------------------------------------------------------------------

    def _see(self, ts: Any) -> float | None:
        t = parse_ts(ts)
        if t is not None and (self.now is None or t > self.now):
            self.now = t
        return t

    def apply_state(self, rec: dict[str, Any]) -> bool:
        """An inventory.state record; an older version than the one held is ignored."""
        store, sku = rec.get("store_id"), rec.get("sku")
        if not isinstance(store, str) or not isinstance(sku, str):
            self.counts["ignored"] += 1
            return False
        key = f"{store}:{sku}"
        old = self.states.get(key)
        version = rec.get("version")
        if old is not None and version is not None and old.get("version") is not None:
            if version <= old["version"]:
                return False  # redelivery or replay of something already shown
        self._see(rec.get("ts"))
        st = {k: rec[k] for k in STATE_FIELDS if rec.get(k) is not None}
        st["category"] = rec.get("category") or (old or {}).get("category") or UNCATEGORIZED
        self.states[key] = st
        self.counts["states"] += 1
        self._dirty_states[key] = st
        self._place(store, sku, st["category"])
        return True

    def _place(self, store: str, sku: str, category: str) -> None:
        key = f"{store}:{sku}"
        cell_key = (store, category)
        prev = self._cell_of.get(key)
        if prev != cell_key:
            if prev is not None:
                self.cells[prev].skus.discard(sku)
                self._dirty_cells.add(prev)
            cell = self.cells.get(cell_key)
            if cell is None:
                cell = self.cells[cell_key] = Cell(store, category)
            cell.skus.add(sku)
            self._cell_of[key] = cell_key
        self._dirty_cells.add(cell_key)

    def apply_observation(self, rec: dict[str, Any]) -> bool:
        store, sku = rec.get("store_id"), rec.get("sku")
        if not isinstance(store, str) or not isinstance(sku, str):
            self.counts["ignored"] += 1
            return False
        key = f"{store}:{sku}"
        t = self._see(rec.get("ts"))
        old = self.observations.get(key)
        if old is not None and t is not None and (parse_ts(old.get("ts")) or 0) > t:
            return False
        obs = {k: rec[k] for k in OBSERVATION_FIELDS if rec.get(k) is not None}
        self.observations[key] = obs
        self.counts["observations"] += 1
        self._dirty_obs[key] = obs
        return True

    def apply_alert(self, rec: dict[str, Any]) -> bool:
        """Lifecycle: open/update keep the alert in the open set, resolved moves it out."""
        aid, status = rec.get("alert_id"), rec.get("status")
        if not isinstance(aid, str) or status not in ("open", "update", "resolved"):
            self.counts["ignored"] += 1
            return False
        t = self._see(rec.get("ts"))
        self.counts["alerts"] += 1
        key = f"{rec.get('store_id')}:{rec.get('sku')}"
        prev = self.alerts.get(aid) or self.resolved.get(aid)
        if status == "resolved":
            if prev is None:
                # Resolved before we saw it open (we joined late): keep it for the feed anyway.
                prev = self._new_alert(rec, t)
            alert = dict(prev)
            alert.update(status="resolved", resolved_ts=rec.get("ts"), resolved_by="worker",
                         ts=rec.get("ts"))
            self._drop_open(aid, key)
            self.resolved[aid] = alert
            self.resolved.move_to_end(aid)
            while len(self.resolved) > self.keep_resolved:
                self.resolved.popitem(last=False)
        else:
            alert = self._new_alert(rec, t) if prev is None else dict(prev)
            if prev is not None:
                alert.update(
                    ts=rec.get("ts"), severity=rec.get("severity"), message=rec.get("message"),
                    action=rec.get("action"), evidence=rec.get("evidence") or {},
                    updates=prev.get("updates", 0) + 1,
                )
                if prev.get("status") == "resolved":
                    # Resolved on the page, but the worker still sees the condition: back open.
                    alert.pop("resolved_ts", None)
                    alert.pop("resolved_by", None)
                    self.resolved.pop(aid, None)
            alert["status"] = status
            self.alerts[aid] = alert
            self._alerts_by_sku.setdefault(key, set()).add(aid)
        self._dirty_alerts[aid] = alert
        self._touch_cell(key)
        return True

    @staticmethod
    def _new_alert(rec: dict[str, Any], t: float | None) -> dict[str, Any]:
        return {
            "alert_id": rec["alert_id"],
            "ts": rec.get("ts"),
            "opened_ts": rec.get("ts"),
            "store_id": rec.get("store_id"),
            "sku": rec.get("sku"),
            "type": rec.get("type"),
            "status": rec.get("status"),
            "severity": rec.get("severity"),
            "message": rec.get("message"),
            "action": rec.get("action"),
            "evidence": rec.get("evidence") or {},
            "acked": False,
            "updates": 0,
        }

    def _drop_open(self, aid: str, key: str) -> None:
        self.alerts.pop(aid, None)
        ids = self._alerts_by_sku.get(key)
        if ids is not None:
            ids.discard(aid)
            if not ids:
                del self._alerts_by_sku[key]

    def _touch_cell(self, key: str) -> None:
        cell_key = self._cell_of.get(key)
        if cell_key is not None:
            self._dirty_cells.add(cell_key)

    # --- operator actions (UI state: nothing goes back to Kafka) -------------------------------

    def acknowledge(self, alert_id: str, by: str = "operator") -> dict[str, Any]:
        alert = self.alerts.get(alert_id)
        if alert is None:
            if alert_id in self.resolved:
                raise AlertNotOpen(f"alert {alert_id} is already resolved")
            raise UnknownAlert(f"no alert with id {alert_id}")
        alert = dict(alert, acked=True, acked_by=by, acked_ts=self._now_iso())
        self.alerts[alert_id] = alert
        self._dirty_alerts[alert_id] = alert
        return alert

    def mark_feedback(self, alert_id: str, false_alarm: bool) -> dict[str, Any]:
        """A person said the alert was wrong (or took that back): shown on the page."""
        alert = self.alerts.get(alert_id)
        store = self.alerts if alert is not None else self.resolved
        alert = store.get(alert_id)
        if alert is None:
            raise UnknownAlert(f"no alert with id {alert_id}")
        alert = dict(alert, false_alarm=false_alarm)
        store[alert_id] = alert
        self._dirty_alerts[alert_id] = alert
        return alert

    def resolve(self, alert_id: str, by: str = "operator") -> dict[str, Any]:
        """Close an alert on the page. If the worker later updates it, it comes back open."""
        alert = self.alerts.get(alert_id)
        if alert is None:
            if alert_id in self.resolved:
                raise AlertNotOpen(f"alert {alert_id} is already resolved")
            raise UnknownAlert(f"no alert with id {alert_id}")
        key = f"{alert.get('store_id')}:{alert.get('sku')}"
        alert = dict(alert, status="resolved", resolved_by=by, resolved_ts=self._now_iso())
        self._drop_open(alert_id, key)
        self.resolved[alert_id] = alert
        self._dirty_alerts[alert_id] = alert
        self._touch_cell(key)
        return alert

    def _now_iso(self) -> str | None:
        from datetime import UTC

        if self.now is None:
            return None
        return datetime.fromtimestamp(self.now, UTC).isoformat().replace("+00:00", "Z")

    # --- queries -------------------------------------------------------------------------------

    def open_alerts_by_sku_count(self, store: str, skus: set[str]) -> tuple[int, str | None]:
        n, worst, rank = 0, None, -1
        for sku in skus:
            for aid in self._alerts_by_sku.get(f"{store}:{sku}", ()):
                n += 1
                sev = self.alerts[aid].get("severity") or "info"
                if SEVERITY_RANK.get(sev, 0) > rank:
                    worst, rank = sev, SEVERITY_RANK.get(sev, 0)
        return n, worst

    def heatmap(self) -> list[dict[str, Any]]:
        return [c.summary(self) for _, c in sorted(self.cells.items())]

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        return self.alerts.get(alert_id) or self.resolved.get(alert_id)

    def snapshot(self) -> dict[str, Any]:
        """Everything a page needs to draw itself; deltas after this carry seq > this seq."""
        return {
            "type": "snapshot",
            "seq": self.seq,
            "now": self.now,
            "horizon_hours": self.horizon_hours,
            "alert_budget": self.alert_budget,
            "states": list(self.states.values()),
            "observations": list(self.observations.values()),
            "alerts": [*self.alerts.values(), *self.resolved.values()],
            "cells": self.heatmap(),
        }

    def pending(self) -> bool:
        return bool(
            self._dirty_states or self._dirty_alerts or self._dirty_obs or self._dirty_cells
        )

    def drain(self) -> dict[str, Any] | None:
        """The coalesced changes since the last drain (latest value per key), or None."""
        if not self.pending():
            return None
        self.seq += 1
        cells = [self.cells[k].summary(self) for k in sorted(self._dirty_cells) if k in self.cells]
        delta = {
            "type": "delta",
            "seq": self.seq,
            "now": self.now,
            "states": list(self._dirty_states.values()),
            "observations": list(self._dirty_obs.values()),
            "alerts": list(self._dirty_alerts.values()),
            "cells": cells,
        }
        self._dirty_states = {}
        self._dirty_obs = {}
        self._dirty_alerts = {}
        self._dirty_cells = set()
        return delta


CELL_FIELDS = (
    "store_id",
    "category",
    "skus",
    "availability",
    "risk",
    "open_alerts",
    "max_severity",
)


def to_wire(msg: dict[str, Any]) -> dict[str, Any]:
    """The websocket form of a snapshot or delta: states and cells as rows under a field list.

    Deltas are mostly states and cells; as rows they are ~2.5× smaller than as objects and
    several times cheaper to parse, which is what keeps hundreds of pages smooth. The page
    turns rows back into objects (dashboard/static/app.js, `rows()`); REST endpoints keep
    plain objects.
    """
    out = dict(msg)
    out["states"] = {
        "f": STATE_FIELDS,
        "r": [[s.get(f) for f in STATE_FIELDS] for s in msg["states"]],
    }
    out["cells"] = {"f": CELL_FIELDS, "r": [[c.get(f) for f in CELL_FIELDS] for c in msg["cells"]]}
    return out


class UnknownAlert(KeyError):
    """No alert with this id (HTTP 404)."""


class AlertNotOpen(ValueError):
    """The alert exists but is resolved already (HTTP 409)."""
