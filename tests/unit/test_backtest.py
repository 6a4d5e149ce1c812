"""The backtest: required fields, determinism (same seed → same JSON), the closed-loop staff.

    pytest tests/unit/test_backtest.py
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import backroom.demand.backtest as bt
from backroom.demand.backtest import backtest
from backroom.demand.closed_loop import AlertDrivenStaff, BudgetedRounds
from backroom.settings import Settings
from backroom.simulation import SimConfig, StoreSimulator

T = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def small(seed: int = 5) -> dict[str, Any]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    out = backtest(days=4, stores=1, skus=5, seed=seed, warmup_days=2, settings=settings, compare=False)
    out.pop("seconds")
    return out


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return small()


def test_the_json_has_the_contract_fields(result: dict[str, Any]) -> None:
    assert {"model", "wape", "seasonal_naive_wape"} <= set(result["forecast"])
    assert {"recall", "precision", "median_lead_hours", "episodes"} <= set(result["alerts"])
    assert set(result["osa"]) == {"alert_driven", "scheduled"} == set(result["moves"])
    assert 0 < result["osa"]["alert_driven"] <= 1 and result["bytes_per_model"] > 0
    # Equal budgets: the scheduled rounds make (about) the moves the alerts caused.
    assert abs(result["moves"]["scheduled"] - result["moves"]["alert_driven"]) <= 2


def test_same_seed_same_json(result: dict[str, Any]) -> None:
    assert small() == result
    assert small(seed=6) != result


def test_after_go_live_every_order_in_the_books_was_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    # REORDER alerts of the warm-up record orders nobody placed (the store ordered on its own
    # routine); the hand-over at go-live drops them, so the position counts only real orders.
    unplaced: set[str] = set()
    flush = bt.Pipeline.flush

    def checked(self: bt.Pipeline) -> None:
        flush(self)
        if not self.result.sim.auto_orders:
            for book in self.alert_table.values():
                unplaced.update(o["alert_id"] for o in book["orders"] if o["alert_id"] not in self.result.placed)

    monkeypatch.setattr(bt.Pipeline, "flush", checked)
    config = SimConfig(stores=1, skus=5, days=4, seed=3)
    run = bt.run_arm(config, Settings(_env_file=None), "alert_driven", 2.0, 45.0)  # type: ignore[call-arg]
    assert run.orders > 0 and run.placed
    assert not unplaced


def test_the_camera_reports_the_facings_that_hold_stock() -> None:
    sim = StoreSimulator(SimConfig(stores=1, skus=3, days=1, seed=2))
    item = sim.items[0]
    cap = item.catalog.shelf_capacity
    facings = -(-cap // 4)
    for shelf, visible in ((0, 0), (1, 1), (4, 1), (5, 2), (cap, facings)):
        item.shelf = shelf
        view = bt.camera_view(item, T, "f1")
        assert (view.facings_visible, view.facings_expected) == (visible, facings)
        assert view.fill_ratio == round(visible / facings, 4)


def test_a_camera_run_alerts_on_what_the_camera_sees_and_staff_recount_phantoms() -> None:
    config = SimConfig(stores=1, skus=6, days=5, seed=3)
    run = bt.run_arm(config, Settings(_env_file=None), "alert_driven", 2.0, 45.0, camera_minutes=30)  # type: ignore[call-arg]
    assert any("observation" in a["evidence"] for a in run.alerts)
    # Records drift above the shelf (theft), the camera sees fewer facings: RESTOCK_SHELF works
    # from the camera's bound, and staff who get a PHANTOM_STOCK count the shelf.
    assert any("shelf_seen_max" in a["evidence"] for a in run.alerts if a["type"] == "RESTOCK_SHELF")
    assert any(a["type"] == "PHANTOM_STOCK" for a in run.alerts)
    staff = run.sim.staff
    assert isinstance(staff, AlertDrivenStaff) and staff.counts >= 1


def test_staff_check_a_phantom_shelf_fill_it_and_count_it() -> None:
    staff = AlertDrivenStaff(reaction_minutes=45)
    sim = StoreSimulator(SimConfig(stores=1, skus=1, days=1, seed=1))
    item = item_of(sim)
    staff.on_alert({"type": "PHANTOM_STOCK", "status": "open", "store_id": item.store_id,
                    "sku": item.catalog.sku, "ts": T.isoformat()})
    assert staff(item, T + timedelta(minutes=30)) == 0 and not staff.recount(item.key)
    assert staff(item, T + timedelta(minutes=45)) == item.catalog.shelf_capacity - 2
    assert staff.recount(item.key) and not staff.recount(item.key)  # once per visit
    assert staff.counts == 1


def item_of(sim: StoreSimulator) -> Any:
    item = sim.items[0]
    item.shelf, item.backroom = 2, 30
    return item


def test_alert_driven_staff_moves_after_the_reaction_delay_and_forgets_resolved_alerts() -> None:
    sim = StoreSimulator(SimConfig(stores=1, skus=2, days=1, seed=1))
    item = item_of(sim)
    t = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    staff = AlertDrivenStaff(reaction_minutes=45)
    alert = {"type": "RESTOCK_SHELF", "status": "open", "store_id": item.store_id,
             "sku": item.catalog.sku, "ts": t.isoformat()}
    staff.on_alert(alert)
    assert staff(item, t + timedelta(minutes=30)) == 0
    assert staff(item, t + timedelta(minutes=60)) == item.catalog.shelf_capacity - 2
    assert staff(item, t + timedelta(minutes=90)) == 0 and staff.moves == 1
    staff.on_alert(alert)
    staff.on_alert(alert | {"status": "resolved"})
    assert staff(item, t + timedelta(hours=3)) == 0


def test_alert_driven_staff_come_back_while_the_alert_stays_open() -> None:
    sim = StoreSimulator(SimConfig(stores=1, skus=2, days=1, seed=1))
    item = item_of(sim)
    t = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    staff = AlertDrivenStaff(reaction_minutes=45)
    alert = {"type": "RESTOCK_SHELF", "status": "open", "store_id": item.store_id,
             "sku": item.catalog.sku, "ts": t.isoformat()}
    staff.on_alert(alert)
    assert staff(item, t + timedelta(minutes=60)) > 0
    item.shelf = item.catalog.shelf_capacity - 5  # filled (the simulator applies the move), 5 sold
    # since; the alert is still open (a standing one)
    assert staff(item, t + timedelta(minutes=90)) == 0  # never faster than the reaction
    assert staff(item, t + timedelta(minutes=120)) == 5 and staff.moves == 2
    staff.on_alert(alert | {"status": "resolved"})
    item.shelf -= 5
    assert staff(item, t + timedelta(minutes=180)) == 0


def test_budgeted_rounds_fill_the_emptiest_shelves_within_the_budget() -> None:
    sim = StoreSimulator(SimConfig(stores=1, skus=4, days=1, seed=1))
    for i, item in enumerate(sim.items):
        item.backroom, item.shelf = 50, i  # item 0 is the emptiest
    rounds = BudgetedRounds(sim.items, {"S01": 2}, rounds_total=2)
    t = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    moved = [rounds(item, t) for item in sim.items]
    assert [m > 0 for m in moved] == [True, False, False, False]  # one move per round
    assert all(rounds(item, t + timedelta(minutes=30)) == 0 for item in sim.items)  # not a round


def test_planogram_sizes_the_shelf_to_the_skus_sales_velocity() -> None:
    # A shelf holds at least a day of average sales at the busiest store factor and a whole case
    # pack (docs/demand.md, "Backtest"): a fast mover's full shelf outlasts the staff's reaction.
    from backroom.simulation import HOUR_PROFILE, PLANOGRAM_DAYS, WEEKDAY_PROFILE

    sim = StoreSimulator(SimConfig(stores=3, skus=20, days=1, seed=7))
    day = sum(HOUR_PROFILE) * sum(WEEKDAY_PROFILE) / len(WEEKDAY_PROFILE)
    for item in sim.items:
        cap = item.catalog.shelf_capacity
        assert cap >= item.catalog.case_pack and cap % 4 == 0
        assert cap >= item.rate * day * PLANOGRAM_DAYS  # every store's factor is ≤ the top one
        peak = item.rate * max(HOUR_PROFILE) * max(WEEKDAY_PROFILE)
        assert cap >= 3 * peak  # a full shelf lasts ≥ 3 peak hours: 2 h warning + the reaction


def test_staff_check_a_silent_shelf_fill_it_and_count_it() -> None:
    staff = AlertDrivenStaff(reaction_minutes=45)
    sim = StoreSimulator(SimConfig(stores=1, skus=1, days=1, seed=1))
    item = item_of(sim)
    staff.on_alert({"type": "CHECK_SHELF", "status": "open", "store_id": item.store_id,
                    "sku": item.catalog.sku, "ts": T.isoformat()})
    assert staff(item, T + timedelta(minutes=45)) == item.catalog.shelf_capacity - 2
    assert staff.recount(item.key) and staff.counts == 1


def test_silent_shelf_scores_by_default_and_the_budget_only_when_switched_on(result: dict[str, Any]) -> None:
    assert {"recall_with_detection", "detection_precision", "detected_after_start"} <= set(result["alerts"])
    assert "feedback" in result and "alert_budget" not in result
    off = backtest(days=4, stores=1, skus=5, seed=5, warmup_days=2, compare=False,
                   settings=Settings(_env_file=None, silent_shelf=False))  # type: ignore[call-arg]
    assert "recall_with_detection" not in off["alerts"] and "feedback" not in off
    assert "CHECK_SHELF" not in off["alert_counts"]
    settings = Settings(_env_file=None, alert_budget=3)  # type: ignore[call-arg]
    on = backtest(days=4, stores=1, skus=5, seed=5, warmup_days=2, settings=settings, compare=False)
    a = on["alerts"]
    assert a["recall"] is None or a["recall_with_detection"] >= a["recall"]
    assert on["alert_budget"]["budget"] == 3 and on["alert_budget"]["hours_sampled"] == 48
    covered = on["alert_budget"]["lost_sales_covered"]
    assert covered is None or 0 < covered <= 1
