"""Reorder-point math and the REORDER / STOCKOUT_RISK / predictive RESTOCK_SHELF lifecycles.

    pytest tests/unit/test_reorder.py
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backroom.alerts import AlertBook, AlertEngine
from backroom.demand.reorder import (
    LEVEL_UNITS,
    ReorderPolicy,
    band_k,
    order_quantity,
    reorder_levels,
)
from backroom.demand.tracker import DemandTracker
from backroom.inventory import SkuParams, SkuState, micros, to_inventory_state
from backroom.records import InventoryState

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def flat_tracker(rate: float, dispersion: float = 1.0) -> DemandTracker:
    d = DemandTracker(dispersion=dispersion)
    d.fc_base = int(T0.timestamp() // 3600)
    d.fc = [rate] * 48
    return d


def test_reorder_point_is_lead_time_demand_plus_z_sigma_sqrt_l() -> None:
    rate, lead, z, cycle = 2.0, 36.0, 1.65, 24.0
    # level_units 0: Poisson variance only (no level error), the textbook formula.
    lv = reorder_levels(flat_tracker(rate), T0, lead, ReorderPolicy(z=z, order_cycle_hours=cycle, level_units=0))
    sigma = math.sqrt(rate)  # Poisson: hourly variance = rate
    assert lv.lead_time_demand == pytest.approx(rate * lead)
    assert lv.safety_stock == pytest.approx(z * sigma * math.sqrt(lead), abs=0.01)
    assert lv.reorder_point == pytest.approx(rate * lead + z * sigma * math.sqrt(lead), abs=0.01)
    assert lv.order_up_to == pytest.approx(rate * (lead + cycle) + z * sigma * math.sqrt(lead + cycle), abs=0.01)


def test_safety_stock_carries_the_forecasts_level_error() -> None:
    # var = phi·D·(1 + D/H): a relative level error sqrt(phi/H) on top of the Poisson noise.
    rate, lead, z = 2.0, 36.0, 1.65
    d = rate * lead
    lv = reorder_levels(flat_tracker(rate), T0, lead, ReorderPolicy(z=z))
    assert lv.safety_stock == pytest.approx(z * math.sqrt(d * (1 + d / LEVEL_UNITS)), abs=0.01)
    assert lv.reorder_point == pytest.approx(d + lv.safety_stock, abs=0.01)
    # A small sum is Poisson-like; a large one's safety stock grows like D, not sqrt(D).
    small = reorder_levels(flat_tracker(0.05), T0, 24, ReorderPolicy(z=z))
    assert small.safety_stock == pytest.approx(z * math.sqrt(1.2), rel=0.03)
    # The alert rules read z·sqrt(phi) back from the state (dynamic shelf minimum).
    for phi in (1.0, 2.5):
        lv = reorder_levels(flat_tracker(rate, phi), T0, lead, ReorderPolicy(z=z))
        assert band_k(lv.safety_stock, lv.lead_time_demand) == pytest.approx(z * math.sqrt(phi), rel=1e-3)


def test_the_reorder_point_looks_ahead_to_the_next_chance_to_recheck() -> None:
    # Open 08:00-20:00 at 2 units/h. At 21:00 the next state (the next sale) comes at ~08:30, and
    # by then the lead-time window reaches further into the next open day: a reorder point from
    # 21:00 alone is lower than the one that 08:30 will demand, with no sale in between to
    # re-check on. Counting the lead time from the next expected sale closes that gap.
    d = DemandTracker()
    d.fc_base = int(T0.replace(hour=0).timestamp() // 3600)
    d.fc = [2.0 if 8 <= h % 24 < 20 else 0.0 for h in range(96)]
    evening, lead = T0.replace(hour=21), 36.0
    nxt = d.hours_until(evening, 1.0)
    assert nxt == pytest.approx(11.5)
    now = reorder_levels(d, evening, lead, ReorderPolicy(z=0, level_units=0))
    ahead = reorder_levels(d, evening, lead, ReorderPolicy(z=0, level_units=0), recheck_hours=nxt)
    then = reorder_levels(d, evening + timedelta(hours=nxt), lead, ReorderPolicy(z=0, level_units=0))
    assert now.reorder_point < then.reorder_point  # the gap a closed night opens
    assert ahead.reorder_point == pytest.approx(then.reorder_point + 1.0)  # + the one unit sold by then

    state = SkuState("S1", "A", shelf_qty=10, backroom_qty=40, clock_us=micros(evening), demand=d)
    params = SkuParams(shelf_capacity=20, min_shelf_qty=5, lead_time_hours=lead, case_pack=6)
    on = to_inventory_state(state, params, policy=ReorderPolicy())
    off = to_inventory_state(state, params, policy=ReorderPolicy(recheck=False))
    assert off.reorder_point == reorder_levels(d, evening, lead, ReorderPolicy()).reorder_point
    assert on.reorder_point == reorder_levels(d, evening, lead, ReorderPolicy(), recheck_hours=nxt).reorder_point


def test_overdispersion_widens_the_safety_stock() -> None:
    calm = reorder_levels(flat_tracker(2.0, 1.0), T0, 24, ReorderPolicy())
    wild = reorder_levels(flat_tracker(2.0, 4.0), T0, 24, ReorderPolicy())
    assert wild.safety_stock == pytest.approx(2 * calm.safety_stock, abs=0.02)  # each rounded to 0.01
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
                    hours_to_stockout=100.0)
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
                        st(8, 10, minutes=60 * 27)])
    statuses = [a.status for a in alerts if a.type == "REORDER"]
    # open (order 1), resolved (counted), still covered at 25 h (ETA 24 h + 2 h grace), then
    # at 27 h the order is past due and the position (18) is below the point: a new order.
    assert statuses == ["open", "resolved", "open"]
    assert len(book.orders) == 1


def test_stockout_risk_severity_by_hours_left_with_hysteresis() -> None:
    st = States()
    no_levels = {"reorder_point": None, "order_up_to": None}  # no order placed to cover it
    # 40 h is inside the 48-h horizon but not if demand comes in 25 % low: not claimed yet.
    hours = (60, 40, 30, 20, 6, 55, 61)
    alerts, _ = run([st(10, 5, hours_to_stockout=h, **no_levels) for h in hours])
    risk = [(a.status, a.severity) for a in alerts if a.type == "STOCKOUT_RISK"]
    assert risk == [("open", "low"), ("update", "medium"), ("update", "high"), ("update", "low"),
                    ("resolved", "low")]
    assert alerts[0].ts == T0 + timedelta(minutes=3)  # opened at 30 h


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


def test_stockout_risk_needs_the_delivery_on_the_shelf_before_the_stock_runs_out() -> None:
    st = States()
    # ETA +24 h, staff reaction 2 h: stock lasting 25 h is not covered (the delivery lands in
    # the backroom at 24 h, the shelf empties before anyone moves it); 26 h is.
    alerts, _ = run([st(10, 5, hours_to_stockout=25)])
    assert of(alerts, "STOCKOUT_RISK")[0][0] == "open"
    alerts, _ = run([st(10, 5, hours_to_stockout=26)])
    assert of(alerts, "REORDER")[0][0] == "open" and not of(alerts, "STOCKOUT_RISK")


def test_stockout_risk_stays_open_through_the_records_reaching_zero() -> None:
    st = States()
    no_levels = {"reorder_point": None, "order_up_to": None}
    # Open at 6 h; the records reach zero (OUT_OF_STOCK opens) while the real shelf may still
    # hold units: the risk stays open (high) until stock is recorded again and lasts.
    alerts, _ = run([st(3, 0, hours_to_stockout=6, **no_levels),
                        st(0, 0, hours_to_stockout=0, **no_levels),
                        st(0, 30, hours_to_stockout=80, **no_levels)])
    kinds = [(a.type, a.status) for a in alerts if a.type != "RESTOCK_SHELF"]
    assert kinds == [("STOCKOUT_RISK", "open"), ("OUT_OF_STOCK", "open"), ("OUT_OF_STOCK", "resolved"),
                     ("STOCKOUT_RISK", "resolved")]
    # Never opened on an empty record: that is OUT_OF_STOCK's alone.
    alerts, _ = run([st(0, 0, hours_to_stockout=0, **no_levels)])
    assert [(a.type, a.status) for a in alerts] == [("OUT_OF_STOCK", "open")]


def test_restock_shelf_is_raised_ahead_and_does_not_flap() -> None:
    st = States()
    # Shelf 15, well above its minimum all along. Demand over the 2-h reaction at the walk's
    # rate (15·2/H) plus 1.65·sqrt of it reaches 15 once the mean projection is ~3 h.
    hours = [4.0, 2.9, 3.5, 4.0, 6.0]
    alerts, _ = run([st(15, 30, hours_to_shelf_out=h) for h in hours])
    restock = [a for a in alerts if a.type == "RESTOCK_SHELF"]
    assert [a.status for a in restock] == ["open", "resolved"]  # held until past 1.5 × 2 h
    assert restock[0].evidence["dynamic_shelf_min"] == pytest.approx(15.66, abs=0.01)
    assert restock[1].ts == T0 + timedelta(minutes=5)


def test_restock_shelf_band_comes_from_the_reorder_levels() -> None:
    st = States()
    # safety stock = z·sqrt(phi·D·(1 + D/H)) gives back k = z·sqrt(phi): a wild SKU (phi 4) opens earlier.
    level = 1 + 48.0 / LEVEL_UNITS
    calm = dict(lead_time_demand=48.0, safety_stock=1.65 * math.sqrt(48.0 * level))
    wild = dict(lead_time_demand=48.0, safety_stock=1.65 * math.sqrt(4 * 48.0 * level))
    alerts, _ = run([st(12, 30, hours_to_shelf_out=4.0, **calm)])
    assert not of(alerts, "RESTOCK_SHELF")  # 6 + 1.65·2.45 = 10 < 12
    alerts, _ = run([st(12, 30, hours_to_shelf_out=4.0, **wild)])
    assert of(alerts, "RESTOCK_SHELF")[0][0] == "open"  # 6 + 3.3·2.45 = 14 ≥ 12


def test_a_full_shelf_that_lasts_less_than_the_reaction_keeps_a_standing_alert() -> None:
    st = States()
    # Capacity 20 selling 12 an hour: even full it is empty long before staff are back.
    fast = dict(demand_per_hour=12.0, hours_to_shelf_out=1.6)
    alerts, _ = run([st(18, 30, **fast), st(20, 10, **fast), st(20, 10, demand_per_hour=0.5,
                                                                  hours_to_shelf_out=30.0)])
    assert [a.status for a in alerts if a.type == "RESTOCK_SHELF"] == ["open", "resolved"]
    assert alerts[-1].ts == T0 + timedelta(minutes=3)  # held on the refilled shelf, not re-opened


def test_no_reorder_without_levels_in_the_state() -> None:
    st = States()
    alerts, _ = run([st(0, 1, reorder_point=None, order_up_to=None)])
    assert not of(alerts, "REORDER")
