"""Cross-store transfer rules: who needs, who can give, how much, how many hours it saves.

    pytest tests/unit/test_transfers.py
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backroom.records import StoreInfo
from backroom.transfers import StoreNetwork, TransferPlanner

NET = StoreNetwork.from_records([
    {"store_id": "S1", "transfer_hours": {"S2": 4, "S3": 10}},
    {"store_id": "S3", "transfer_hours": {"S1": 12}},  # S3 -> S1 is slower than S1 -> S3
])


def st(store: str, shelf: int, back: int, rate: float, stockout: float | None, **kw: Any) -> dict[str, Any]:
    return {"store_id": store, "sku": "A", "shelf_qty": shelf, "backroom_qty": back, "demand_per_hour": rate,
            "hours_to_stockout": stockout, "min_shelf_qty": 2, "lead_time_hours": 48.0,
            "supplier_eta_hours": 48.0, **kw}


def test_network_is_symmetric_unless_a_store_says_otherwise() -> None:
    assert NET.between("S1", "S2") == NET.between("S2", "S1") == 4
    assert (NET.between("S1", "S3"), NET.between("S3", "S1")) == (10, 12)
    assert NET.between("S2", "S3") is None


def test_a_store_running_out_before_its_delivery_gets_stock_from_the_nearest_with_spare() -> None:
    # S1 sells 1 an hour, has 10: out in 10 h, the supplier in 48 h. S2 (4 h away) holds 100 and
    # needs 48 + 2 of it; S3 (12 h away) holds more but is further.
    planner = TransferPlanner(NET)
    [t] = planner.suggest([st("S1", 4, 6, 1.0, 10.0), st("S2", 60, 40, 1.0, 100.0), st("S3", 90, 90, 1.0, 180.0)])
    assert (t.from_store, t.to_store, t.transfer_hours) == ("S2", "S1", 4)
    assert t.qty == 48 - 10  # its demand until the delivery less its stock
    assert t.hours_saved == pytest.approx(48 - 10)  # empty from hour 10 to 48 without it
    assert planner.spare(st("S2", 60, 40, 1.0, 100.0)) == 100 - 48 - 2


def test_no_transfer_when_the_supplier_is_first_or_nobody_can_spare() -> None:
    planner = TransferPlanner(NET)
    assert planner.suggest([st("S1", 40, 20, 1.0, 60.0), st("S2", 90, 90, 1.0, 180.0)]) == []  # lasts 60 h > 48 h
    assert planner.suggest([st("S1", 4, 6, 1.0, 10.0), st("S2", 30, 10, 1.0, 40.0)]) == []  # S2 needs its 40
    # An order already on its way lands in 8 h, before the stockout: nothing to do.
    assert planner.suggest([st("S1", 4, 6, 1.0, 10.0, supplier_eta_hours=8.0), st("S2", 90, 90, 1.0, 180.0)]) == []
    # No order on its way: that is REORDER's call, not a transfer's.
    assert planner.suggest([st("S1", 4, 6, 1.0, 10.0, supplier_eta_hours=None), st("S2", 90, 90, 1.0, 180.0)]) == []
    # Stores with no transfer time between them never transfer.
    assert planner.suggest([st("S2", 4, 6, 1.0, 10.0), st("S3", 90, 90, 1.0, 180.0)]) == []


def test_the_giver_keeps_its_own_48h_and_gives_at_most_its_spare() -> None:
    [t] = TransferPlanner(NET).suggest([st("S1", 0, 0, 2.0, 0.0), st("S2", 40, 20, 0.1, 600.0)])
    assert t.qty == 60 - round(0.1 * 48) - 2  # S2 spares 53; S1 would want 96
    assert t.hours_saved == pytest.approx(48 - 4)  # empty now: saved from the arrival on


def test_store_records_are_checked() -> None:
    assert StoreInfo.model_validate({"store_id": "S1", "transfer_hours": {"S2": 3.5}}).transfer_hours == {"S2": 3.5}
    with pytest.raises(ValidationError):
        StoreInfo.model_validate({"store_id": "S1", "transfer_hours": {"S2": -1}})


def test_the_desk_opens_one_transfer_alert_and_resolves_it_when_the_need_passes() -> None:
    from datetime import UTC, datetime

    from backroom.transfers import TransferDesk

    desk = TransferDesk(TransferPlanner(NET))
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    short = [st("S1", 4, 6, 1.0, 10.0, unit_cost=2.0), st("S2", 60, 40, 1.0, 100.0)]
    [opened] = desk.evaluate(short, now)
    assert (opened.type, opened.status, opened.store_id, opened.severity) == ("TRANSFER", "open", "S1", "high")
    assert opened.evidence["from_store"] == "S2" and opened.evidence["qty"] == 38
    assert opened.evidence["expected_lost"] == {"units": 38.0, "value": 76.0, "hours": 38.0, "price": 2.0,
                                                "price_source": "catalog unit_cost"}
    assert desk.evaluate(short, now) == []  # still needed: one open alert, no repeats
    [resolved] = desk.evaluate([st("S1", 40, 20, 1.0, 60.0), st("S2", 60, 40, 1.0, 100.0)], now)
    assert (resolved.alert_id, resolved.status) == (opened.alert_id, "resolved")


def test_a_simulated_transfer_leaves_the_giver_now_and_arrives_as_a_delivery() -> None:
    from datetime import UTC, datetime, timedelta

    from backroom.simulation import SimConfig, StoreSimulator

    sim = StoreSimulator(SimConfig(stores=2, skus=1, days=1, seed=3))
    giver, receiver = sim.items
    giver.backroom, receiver.backroom = 30, 0
    t = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert sim.transfer(giver.key, receiver.key, 12, t, 4.0) == 12
    assert (giver.backroom, giver.outbox, receiver.pipeline[-1]) == (18, [12], (t + timedelta(hours=4), 12))
    assert sim.transfer(giver.key, receiver.key, 50, t, 4.0) == 18  # no more than it holds
    assert sim.truth[-1].backroom == 0


def test_the_board_plans_one_sku_from_each_stores_latest_position_at_event_time() -> None:
    """The worker's per-SKU board (streams/transfers.py): positions arrive one store at a time,
    each with its own ts; the newest ts is 'now', older positions are aged to it, the supplier's
    arrival is read from `supplier_eta`, and an older version of a store changes nothing."""
    from datetime import UTC, datetime, timedelta

    from backroom.transfers import TransferBoard, positions_at

    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def pos(store: str, shelf: int, back: int, stockout: float | None, at: float, version: int,
            eta: float | None = None) -> dict[str, Any]:
        d = st(store, shelf, back, 1.0, stockout, ts=(t0 + timedelta(hours=at)).isoformat(), version=version,
               unit_cost=2.0)
        d.pop("supplier_eta_hours")
        if eta is not None:
            d["supplier_eta"] = (t0 + timedelta(hours=eta)).isoformat()
        return d

    # Aged: 10 h to stockout two hours ago is 8 h now; the order lands in 50 - 2 = 48 h.
    [aged] = positions_at([pos("S1", 4, 6, 10.0, 0.0, 1, eta=50.0)], t0 + timedelta(hours=2))
    assert aged["hours_to_stockout"] == pytest.approx(8.0) and aged["supplier_eta_hours"] == pytest.approx(48.0)
    assert "supplier_eta" not in aged

    board = TransferBoard()
    assert board.update(pos("S1", 4, 6, 10.0, 0.0, 3, eta=50.0), NET) == []  # nobody else known yet
    [opened] = board.update(pos("S2", 60, 40, 100.0, 1.0, 7), NET)
    assert (opened.type, opened.status, opened.store_id) == ("TRANSFER", "open", "S1")
    assert opened.evidence["from_store"] == "S2" and opened.evidence["hours_saved"] > 0
    assert opened.ts == t0 + timedelta(hours=1)  # event time: the newest position
    # A table value round trip keeps the open suggestion: no repeat.
    board = TransferBoard.from_dict(board.to_dict())
    assert board.update(pos("S2", 60, 40, 100.0, 1.5, 8), NET) == []
    assert board.update(pos("S1", 40, 20, 60.0, 0.5, 2), NET) == []  # an older version of S1
    # S1 restocked (its stock now outlasts the order): the suggestion is resolved.
    [resolved] = board.update(pos("S1", 40, 20, 60.0, 2.0, 4, eta=50.0), NET)
    assert (resolved.alert_id, resolved.status) == (opened.alert_id, "resolved")
