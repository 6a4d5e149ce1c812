"""Expected lost sales per alert, the cost order of the alerts topic, the per-store budget.

    pytest tests/unit/test_budget.py
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backroom.alerts import AlertBook, AlertEngine
from backroom.budget import apply_budget, cost_of, expected_lost, order_by_cost
from backroom.records import Alert, InventoryState

T = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def lost(type_: str, **state: Any) -> dict[str, Any]:
    return expected_lost(type_, state, reaction_hours=2.0, default_lead_hours=48.0)


def test_shelf_alerts_lose_what_sells_after_the_shelf_empties_until_staff_come() -> None:
    # 3 an hour; the shelf lasts 0.5 h, staff come in 2 h: 1.5 h empty = 4.5 units.
    assert lost("RESTOCK_SHELF", demand_per_hour=3.0, hours_to_shelf_out=0.5, unit_cost=2.0) == {
        "units": 4.5, "value": 9.0, "hours": 1.5, "price": 2.0, "price_source": "catalog unit_cost"}
    # The shelf outlasts the reaction time: nothing lost by waiting.
    assert lost("RESTOCK_SHELF", demand_per_hour=3.0, hours_to_shelf_out=5.0)["units"] == 0.0
    # Phantom stock: the shelf is empty now.
    assert lost("PHANTOM_STOCK", demand_per_hour=3.0, hours_to_shelf_out=5.0)["units"] == 6.0
    # CHECK_SHELF: weighted by the chance the silence means an empty shelf.
    got = expected_lost("CHECK_SHELF", {"demand_per_hour": 3.0}, reaction_hours=2.0, default_lead_hours=48.0,
                        evidence={"p_no_sale": 0.25})
    assert got["units"] == 4.5 and got["value"] is None and got["price_source"] is None


def test_stock_alerts_lose_the_lead_time_after_the_stock_runs_out_at_the_mean_rate() -> None:
    # Out now, 24 h lead, 12 units over the lead time (0.5 an hour on average, nights included).
    assert lost("OUT_OF_STOCK", demand_per_hour=2.0, lead_time_hours=24.0, lead_time_demand=12.0)["units"] == 12.0
    # Runs out in 20 h, the delivery in 24 h: 4 h at 0.5 = 2 units.
    assert lost("STOCKOUT_RISK", demand_per_hour=2.0, hours_to_stockout=20.0, lead_time_hours=24.0,
                lead_time_demand=12.0)["units"] == 2.0
    # No lead-time demand in the state: the coming hour's rate, the default lead time.
    assert lost("REORDER", demand_per_hour=1.0, hours_to_stockout=40.0)["units"] == 8.0


def alert(aid: str, store: str, value: float | None, units: float = 0.0, severity: str = "medium") -> dict[str, Any]:
    return {"alert_id": aid, "store_id": store, "sku": aid, "severity": severity,
            "evidence": {"expected_lost": {"units": units, "value": value}}}


def test_budget_keeps_the_most_costly_per_store_and_the_rest_in_more() -> None:
    alerts = [alert("a", "S1", 5.0), alert("b", "S1", 50.0), alert("c", "S1", None, units=7.0),
              alert("d", "S2", 1.0), alert("e", "S1", 0.0, severity="critical"), alert("f", "S1", 0.0)]
    shown, more = apply_budget(alerts, budget=2)
    assert [a["alert_id"] for a in shown] == ["b", "c", "d"]  # S1's two most costly, S2's only one
    assert [a["alert_id"] for a in more] == ["a", "e", "f"]  # equal cost: the more severe first
    assert cost_of(alerts[2]) == 7.0  # no cost in the catalog: ranked by units
    shown, more = apply_budget(alerts, budget=20)
    assert more == [] and len(shown) == 6


def _alert(store: str, sku: str, status: str, value: float) -> Alert:
    return Alert.model_validate({
        "alert_id": f"{sku}-{status}", "ts": T, "store_id": store, "sku": sku,
        "type": "RESTOCK_SHELF", "status": status, "severity": "low", "message": "m", "action": "a",
        "evidence": {"expected_lost": {"units": value, "value": value}} if status != "resolved" else {},
    })


def test_topic_order_is_by_cost_but_never_resolves_before_it_opens() -> None:
    batch = [_alert("S1", "CHEAP", "open", 1.0), _alert("S1", "DEAR", "resolved", 0.0),
             _alert("S1", "DEAR", "open", 30.0), _alert("S1", "MID", "open", 5.0)]
    ordered = [(a.sku, a.status) for a in order_by_cost(batch)]
    assert ordered == [("DEAR", "resolved"), ("DEAR", "open"), ("MID", "open"), ("CHEAP", "open")]


def test_every_engine_alert_carries_expected_lost_sales() -> None:
    state = InventoryState.model_validate({
        "ts": T, "store_id": "S1", "sku": "A", "shelf_qty": 0, "backroom_qty": 0,
        "shelf_capacity": 20, "demand_per_hour": 2.0, "hours_to_shelf_out": 0.0, "hours_to_stockout": 0.0,
        "min_shelf_qty": 4, "version": 1, "unit_cost": 1.5, "lead_time_hours": 24.0,
    })
    out = AlertEngine().on_state(AlertBook(), state)
    assert {a.type for a in out} >= {"OUT_OF_STOCK"}
    for a in out:
        assert a.evidence["expected_lost"]["price_source"] == "catalog unit_cost"
    oos = next(a for a in out if a.type == "OUT_OF_STOCK")
    assert oos.evidence["expected_lost"] == pytest.approx(
        {"units": 48.0, "value": 72.0, "hours": 24.0, "price": 1.5, "price_source": "catalog unit_cost"})
