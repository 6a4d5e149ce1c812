"""Reorder-point math and the REORDER / STOCKOUT_RISK / predictive RESTOCK_SHELF lifecycles.

    pytest tests/unit/test_reorder.py
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backroom.alerts import AlertBook, AlertEngine
from backroom.demand.reorder import ReorderPolicy, order_quantity, reorder_levels
from backroom.demand.tracker import DemandTracker
from backroom.records import InventoryState

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def flat_tracker(rate: float, dispersion: float = 1.0) -> DemandTracker:
    d = DemandTracker(dispersion=dispersion)
    d.fc_base = int(T0.timestamp() // 3600)
    d.fc = [rate] * 48
    return d


def test_reorder_point_is_lead_time_demand_plus_z_sigma_sqrt_l() -> None:
    rate, lead, z, cycle = 2.0, 36.0, 1.65, 24.0
    lv = reorder_levels(flat_tracker(rate), T0, lead, ReorderPolicy(z=z, order_cycle_hours=cycle))
    sigma = math.sqrt(rate)  # Poisson: hourly variance = rate
    assert lv.lead_time_demand == pytest.approx(rate * lead)
    assert lv.safety_stock == pytest.approx(z * sigma * math.sqrt(lead), abs=0.01)
    assert lv.reorder_point == pytest.approx(rate * lead + z * sigma * math.sqrt(lead), abs=0.01)
    assert lv.order_up_to == pytest.approx(rate * (lead + cycle) + z * sigma * math.sqrt(lead + cycle), abs=0.01)


def test_overdispersion_widens_the_safety_stock() -> None:
    calm = reorder_levels(flat_tracker(2.0, 1.0), T0, 24, ReorderPolicy())
    wild = reorder_levels(flat_tracker(2.0, 4.0), T0, 24, ReorderPolicy())
    assert wild.safety_stock == pytest.approx(2 * calm.safety_stock, abs=0.01)
    assert wild.lead_time_demand == calm.lead_time_demand


def test_order_quantity_rounds_up_to_whole_cases() -> None:
    assert order_quantity(position=10, order_up_to=35, case_pack=12) == 36
    assert order_quantity(position=10, order_up_to=34, case_pack=12) == 24
    assert order_quantity(position=40, order_up_to=35, case_pack=12) == 12  # at least one case
    assert order_quantity(position=0, order_up_to=5, case_pack=0) == 5


class States:
    def __init__(self) -> None:
        self.version = 0

    def __call__(self, shelf: int, backroom: int, minutes: float | None = None, **kw: Any) -> InventoryState:
        self.version += 1
        base = dict(ts=T0 + timedelta(minutes=self.version if minutes is None else minutes),
                    store_id="S1", sku="A", shelf_qty=shelf, backroom_qty=backroom,
                    shelf_capacity=20, min_shelf_qty=2, demand_per_hour=1.0, version=self.version,
                    lead_time_hours=24.0, case_pack=6, reorder_point=30.0, order_up_to=50.0,
                    hours_to_stockout=100.0)  # fmt: skip
        base.update(kw)
        return InventoryState.model_validate(base)


def run(states: list[InventoryState], engine: AlertEngine | None = None) -> tuple[list[Any], AlertBook]:
    engine = engine or AlertEngine()
    book = AlertBook()
    out = []
    for s in states:
        out += engine.on_state(book, s)
    return out, book


def of(alerts: list[Any], type_: str) -> list[tuple[str, str]]:
    return [(a.status, a.action) for a in alerts if a.type == type_]


def test_reorder_opens_at_the_reorder_point_places_one_order_then_resolves() -> None:
    st = States()
    alerts, book = run([st(10, 21), st(10, 20), st(10, 19), st(10, 18)])
    reorders = [a for a in alerts if a.type == "REORDER"]
    assert [a.status for a in reorders] == ["open", "resolved"]
    opened = reorders[0]
    assert opened.evidence["position"] == 30 and opened.evidence["order_qty"] == 24  # 50-30 → 4 cases
    assert "order 24 units" in opened.action and "4 cases of 6" in opened.action
    # The order counts as on order until it is due: no second order for the same need.
    assert book.orders and book.orders[0]["qty"] == 24
    assert book.orders[0]["eta"] == (opened.ts + timedelta(hours=24)).isoformat()


def test_a_second_order_only_after_the_first_is_due() -> None:
    st = States()
    alerts, book = run([st(10, 20), st(8, 10), st(8, 10, minutes=60 * 25),
                        st(8, 10, minutes=60 * 27)])  # fmt: skip
    statuses = [a.status for a in alerts if a.type == "REORDER"]
    # open (order 1), resolved (counted), still covered at 25 h (ETA 24 h + 2 h grace), then
    # at 27 h the order is past due and the position (18) is below the point: a new order.
    assert statuses == ["open", "resolved", "open"]
    assert len(book.orders) == 1


def test_stockout_risk_severity_by_hours_left_with_hysteresis() -> None:
    st = States()
    no_levels = {"reorder_point": None, "order_up_to": None}  # no order placed to cover it
    alerts, _ = run([st(10, 5, hours_to_stockout=h, **no_levels) for h in (60, 40, 20, 6, 55, 61)])
    risk = [(a.status, a.severity) for a in alerts if a.type == "STOCKOUT_RISK"]
    assert risk == [("open", "low"), ("update", "medium"), ("update", "high"), ("update", "low"),
                    ("resolved", "low")]  # fmt: skip


def test_stockout_risk_is_covered_by_an_order_due_before_the_stock_runs_out() -> None:
    st = States()
    # Position 15 ≤ 30: REORDER orders now (ETA +24 h). Stock lasts 30 h: covered, no risk.
    alerts, _ = run([st(10, 5, hours_to_stockout=30)])
    assert of(alerts, "REORDER")[0][0] == "open" and not of(alerts, "STOCKOUT_RISK")
    # Stock lasts 10 h: the order comes too late — a risk, whose action says expedite.
    alerts, _ = run([st(10, 5, hours_to_stockout=10)])
    risk = of(alerts, "STOCKOUT_RISK")
    assert risk and risk[0][0] == "open" and "expedite" in risk[0][1]
    reorder = next(a for a in alerts if a.type == "REORDER")
    assert reorder.severity == "high"


def test_restock_shelf_is_raised_ahead_and_does_not_flap() -> None:
    st = States()
    hours = [3.0, 1.9, 2.5, 2.9, 3.2]  # shelf well above its minimum all along
    alerts, _ = run([st(15, 30, hours_to_shelf_out=h) for h in hours])
    restock = [a.status for a in alerts if a.type == "RESTOCK_SHELF"]
    assert restock == ["open", "resolved"]  # opened at 1.9 h, held until past 1.5 × 2 h


def test_no_reorder_without_levels_in_the_state() -> None:
    st = States()
    alerts, _ = run([st(0, 1, reorder_point=None, order_up_to=None)])
    assert not of(alerts, "REORDER")
