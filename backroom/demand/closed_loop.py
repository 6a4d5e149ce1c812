"""Simulated staff and buyers that act on alerts, and the equal-budget scheduled baseline.

    staff = AlertDrivenStaff(reaction_minutes=45)
    sim = StoreSimulator(config, staff=staff)
    staff.on_alert(alert_dict)       # RESTOCK_SHELF open/update → a move after the reaction delay

Used in-process by `backroom backtest` and, over Kafka, by `backroom simulate --staff
alert-driven` (producers/simulator.py consumes the alerts topic and feeds `on_alert`). Tests:
`pytest tests/unit/test_backtest.py`.

Staff look at the shelf when they get there (the truth), so a move fills the shelf to capacity
from what the backroom really holds; a move that finds nothing to do is not made. A PHANTOM_STOCK
alert (records say stock, the camera sees a gap) or a CHECK_SHELF (records say stock, the sales
have gone improbably quiet) gets the same visit, and the shelf is counted on
it (`recount`: the simulator publishes a `count` scan). An alert still
open after a visit stays on the staff's list and is taken again `reaction_minutes` later (the
same delay as a new alert, never faster).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from backroom.simulation import SimSku, StaffPolicy, scheduled_staff


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class AlertDrivenStaff:
    """Moves stock for a SKU `reaction_minutes` after its RESTOCK_SHELF alert opens."""

    def __init__(self, reaction_minutes: float = 45.0, before: datetime | None = None,
                 flush: Callable[[], None] | None = None,
                 feedback: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.reaction = timedelta(minutes=reaction_minutes)
        self.due: dict[str, datetime] = {}  # key -> when staff get to the shelf
        self.open: set[str] = set()  # keys with a RESTOCK_SHELF alert open
        self.before = before  # until then (a warm-up), act like the store's scheduled rounds
        self.fallback = scheduled_staff()
        # Called before each decision so alerts up to this event time have been processed.
        self.flush = flush
        self.moves = 0
        self.phantom: set[str] = set()  # keys with a PHANTOM_STOCK to check at the next visit
        self.counting: set[str] = set()  # keys visited for it: the shelf is counted
        self.counts = 0
        # Simulated false-alarm feedback: a check that finds stock on the shelf says so.
        self.feedback = feedback
        self.checks: dict[str, dict[str, Any]] = {}  # key -> the check alert being visited for
        self.false_alarms = 0

    def on_alert(self, alert: dict[str, Any]) -> None:
        key = f"{alert['store_id']}:{alert['sku']}"
        if alert["type"] in ("PHANTOM_STOCK", "CHECK_SHELF"):
            # Records say stock, the camera sees a gap: go and look, fill the shelf, count it.
            if alert["status"] == "open":
                self.phantom.add(key)
                self.checks[key] = alert
                self.due.setdefault(key, _ts(alert["ts"]) + self.reaction)
            return
        if alert["type"] != "RESTOCK_SHELF":
            return
        if alert["status"] == "resolved":
            self.due.pop(key, None)
            self.open.discard(key)
        else:
            self.open.add(key)
            if key not in self.due:
                self.due[key] = _ts(alert["ts"]) + self.reaction

    def __call__(self, item: SimSku, ts: datetime) -> int:
        if self.before is not None and ts < self.before:
            return self.fallback(item, ts)
        if self.flush is not None:
            self.flush()
        due = self.due.get(item.key)
        if due is None or ts < due:
            return 0
        del self.due[item.key]
        if item.key in self.phantom:
            self.phantom.discard(item.key)
            self.counting.add(item.key)
            check = self.checks.pop(item.key, None)
            if self.feedback is not None and check is not None and item.shelf > 0:
                self.false_alarms += 1
                self.feedback({
                    "event_id": f"fb-{check['alert_id']}", "ts": ts, "alert_id": check["alert_id"],
                    "store_id": check["store_id"], "sku": check["sku"], "alert_type": check["type"],
                    "verdict": "false_alarm", "source": "simulation", "by": "staff",
                })
        if item.key in self.open:
            # Still open after this visit (a fast mover whose full shelf does not last the
            # reaction time): the task stays on the list, taken again after the same delay.
            # A move resolving the alert drops it (on_alert) before the next visit is due.
            self.due[item.key] = ts + self.reaction
        move = min(item.backroom, item.catalog.shelf_capacity - item.shelf)
        if move > 0:
            self.moves += 1
        return max(0, move)

    def recount(self, key: str) -> bool:
        """Whether the visit just made to `key` counts its shelf (the simulator then publishes
        the count); once per PHANTOM_STOCK visit."""
        if key in self.counting:
            self.counting.discard(key)
            self.counts += 1
            return True
        return False


class BudgetedRounds:
    """Fixed restock rounds with a budget of moves: at each round hour, per store, the shelves
    lowest in fill (that the backroom can refill) are filled, up to the round's share of the
    budget; an unused share carries over to the next round."""

    def __init__(self, items: list[SimSku], budget: dict[str, int], rounds_total: int,
                 hours: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21),
                 before: datetime | None = None) -> None:
        self.items = items
        self.hours = hours
        self.per_round = {store: n / max(1, rounds_total) for store, n in budget.items()}
        self.credit = dict.fromkeys(budget, 0.0)
        self.before = before
        self.fallback = scheduled_staff()
        self.round_ts: datetime | None = None
        self.chosen: set[str] = set()
        self.moves = 0

    def _plan(self, ts: datetime) -> None:
        self.round_ts, self.chosen = ts, set()
        for store in self.per_round:
            self.credit[store] += self.per_round[store]
            need = [
                it for it in self.items
                if it.store_id == store and it.backroom > 0 and it.shelf < it.catalog.shelf_capacity
            ]
            need.sort(key=lambda it: (it.shelf / it.catalog.shelf_capacity, it.key))
            take = int(self.credit[store])
            for it in need[:take]:
                self.chosen.add(it.key)
            self.credit[store] -= min(take, len(need))

    def __call__(self, item: SimSku, ts: datetime) -> int:
        if self.before is not None and ts < self.before:
            return self.fallback(item, ts)
        if ts.hour not in self.hours or ts.minute != 0:
            return 0
        if self.round_ts != ts:
            self._plan(ts)
        if item.key not in self.chosen:
            return 0
        self.chosen.discard(item.key)
        move = min(item.backroom, item.catalog.shelf_capacity - item.shelf)
        if move > 0:
            self.moves += 1
        return max(0, move)


def as_policy(staff: AlertDrivenStaff | BudgetedRounds) -> StaffPolicy:
    return staff
