"""The alert budget: what each alert costs if nobody acts (expected lost sales), the order of the
feed and of the `alerts` topic by that cost, and a per-store budget of alerts shown.

    lost = expected_lost("RESTOCK_SHELF", state, reaction_hours=2.0, default_lead_hours=48.0)
    shown, more = apply_budget(open_alerts, budget=20)   # per store, most costly first

Tests: `pytest tests/unit/test_budget.py`; docs/floor.md.

Expected lost sales of an alert = demand rate x the hours the shelf (or the store) stands empty
before the fix the alert asks for, if nobody acts on anything else:
- shelf alerts (RESTOCK_SHELF, PHANTOM_STOCK, CHECK_SHELF) are fixed by staff within
  `staff_reaction_hours`; RESTOCK_SHELF loses sales only for the part of that after the shelf
  runs out (`hours_to_shelf_out`); PHANTOM_STOCK and CHECK_SHELF treat the shelf as empty now
  (CHECK_SHELF weighted by 1 - P(no sale), the chance the silence means an empty shelf);
- stock alerts (OUT_OF_STOCK, STOCKOUT_RISK, REORDER) are fixed by a delivery after the lead
  time; they lose the part of the lead time after the stock runs out (`hours_to_stockout`, 0
  when out now), at the mean rate over the lead time (`lead_time_demand / lead_time_hours`)
  when the state has it (a lead time spans nights), else the coming hour's rate;
- TRANSFER: the hours it saves (evidence `hours_saved`) at the mean rate.
Value = units x the catalog's `unit_cost` (lost sales at cost: the catalog has no shelf price),
None when the catalog has no cost; the order then falls back to units.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

SHELF_TYPES = frozenset({"RESTOCK_SHELF", "PHANTOM_STOCK", "CHECK_SHELF"})
STOCK_TYPES = frozenset({"OUT_OF_STOCK", "STOCKOUT_RISK", "REORDER"})


def expected_lost(alert_type: str, state: Mapping[str, Any], *, reaction_hours: float,
                  default_lead_hours: float, evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`state`: an inventory.state as a dict (demand_per_hour, hours_to_shelf_out,
    hours_to_stockout, lead_time_hours, lead_time_demand, unit_cost)."""
    evidence = evidence or {}
    rate = max(0.0, float(state.get("demand_per_hour") or 0.0))
    lead = float(state.get("lead_time_hours") or default_lead_hours)
    ltd = state.get("lead_time_demand")
    mean_rate = float(ltd) / lead if ltd is not None and lead > 0 else rate
    weight = 1.0
    if alert_type in SHELF_TYPES:
        fix = reaction_hours
        empty_in = float(state.get("hours_to_shelf_out") or 0.0) if alert_type == "RESTOCK_SHELF" else 0.0
        if alert_type == "CHECK_SHELF":
            weight = 1.0 - float(evidence.get("p_no_sale", 0.0))
        hours = max(0.0, fix - empty_in)
        units = rate * hours * weight
    elif alert_type in STOCK_TYPES:
        fix = lead
        empty_in = 0.0 if alert_type == "OUT_OF_STOCK" else float(state.get("hours_to_stockout") or 0.0)
        hours = max(0.0, fix - empty_in)
        units = mean_rate * hours
    else:  # TRANSFER and anything newer: the hours of empty shelf it saves
        hours = float(evidence.get("hours_saved") or 0.0)
        units = mean_rate * hours
    cost = state.get("unit_cost")
    value = round(units * float(cost), 2) if cost is not None else None
    return {"units": round(units, 2), "value": value, "hours": round(hours, 2),
            "price": cost, "price_source": "catalog unit_cost" if cost is not None else None}


def cost_of(alert: Mapping[str, Any]) -> float:
    """The number alerts are ranked by: expected lost value, else units, else 0."""
    lost = (alert.get("evidence") or {}).get("expected_lost") or {}
    value = lost.get("value")
    return float(value if value is not None else lost.get("units") or 0.0)


class _HasKey(Protocol):
    store_id: str
    sku: str
    evidence: dict[str, Any]


A = TypeVar("A", bound=_HasKey)


def order_by_cost(alerts: Sequence[A]) -> list[A]:
    """Most costly store×SKU first, each store×SKU's events in their own order (an `open` never
    after its `resolved`): the `alerts` topic's order within a batch."""
    top: dict[tuple[str, str], float] = defaultdict(float)
    for a in alerts:
        k = (a.store_id, a.sku)
        top[k] = max(top[k], cost_of({"evidence": a.evidence}))
    return sorted(alerts, key=lambda a: -top[(a.store_id, a.sku)])


SEVERITY_RANK: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def rank_key(alert: Mapping[str, Any]) -> tuple[float, int, str]:
    return (-cost_of(alert), -SEVERITY_RANK.get(str(alert.get("severity")), 0), str(alert.get("alert_id")))


def apply_budget(open_alerts: Iterable[Mapping[str, Any]], budget: int
                 ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(shown, more): per store the `budget` most costly open alerts are shown, the rest go to
    the "more" list; both ordered most costly first."""
    by_store: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for a in open_alerts:
        by_store[str(a.get("store_id"))].append(a)
    shown: list[Mapping[str, Any]] = []
    more: list[Mapping[str, Any]] = []
    for alerts in by_store.values():
        alerts.sort(key=rank_key)
        shown += alerts[:budget]
        more += alerts[budget:]
    shown.sort(key=rank_key)
    more.sort(key=rank_key)
    return shown, more
