"""Alert rules and lifecycle: open, update, resolve, one open per type, hysteresis, no storms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backroom.alerts import AlertBook, AlertEngine
from backroom.records import InventoryState

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class StateSeq:
    """Consecutive inventory states of one SKU, versions increasing."""

    def __init__(self) -> None:
        self.version = 0

    def __call__(self, shelf: int, backroom: int, **kw: Any) -> InventoryState:
        self.version += 1
        base = dict(ts=T0 + timedelta(minutes=self.version), store_id="S1", sku="A", shelf_qty=shelf,
                    backroom_qty=backroom, shelf_capacity=20, min_shelf_qty=5, demand_per_hour=1.0,
                    version=self.version)
        base.update(kw)
        return InventoryState.model_validate(base)


def run(states: list[InventoryState], engine: AlertEngine | None = None) -> tuple[list, AlertBook]:
    engine = engine or AlertEngine()
    book = AlertBook()
    out = []
    for s in states:
        out += engine.on_state(book, s)
    return out, book


def test_restock_opens_when_shelf_low_and_backroom_has_stock_then_resolves() -> None:
    st = StateSeq()
    alerts, book = run([st(10, 30), st(5, 30), st(4, 30), st(20, 14)])
    kinds = [(a.type, a.status) for a in alerts]
    assert kinds == [("RESTOCK_SHELF", "open"), ("RESTOCK_SHELF", "resolved")]
    opened = alerts[0]
    assert "move 15 units" in opened.action and opened.evidence["shelf_qty"] == 5
    assert alerts[1].alert_id == opened.alert_id and not book.open


def test_severity_change_is_an_update_with_the_same_id() -> None:
    st = StateSeq()
    alerts, _ = run([st(5, 30), st(0, 30)])
    assert [a.status for a in alerts] == ["open", "update"]
    assert alerts[1].severity == "high" and alerts[0].alert_id == alerts[1].alert_id


def test_hysteresis_prevents_a_storm_around_the_threshold() -> None:
    st = StateSeq()
    bouncing = [st(q, 30) for q in (5, 6, 5, 6, 5, 7, 5, 6)]
    alerts, _ = run(bouncing)
    assert [a.status for a in alerts] == ["open"]


def test_out_of_stock_when_both_empty_and_restock_does_not_fire_without_backroom() -> None:
    st = StateSeq()
    alerts, book = run([st(3, 0), st(0, 0), st(0, 12)])
    kinds = [(a.type, a.status) for a in alerts]
    assert ("OUT_OF_STOCK", "open") in kinds and ("OUT_OF_STOCK", "resolved") in kinds
    assert kinds.index(("OUT_OF_STOCK", "open")) < kinds.index(("OUT_OF_STOCK", "resolved"))
    assert ("RESTOCK_SHELF", "open") in kinds  # backroom refilled, shelf empty
    assert set(book.open) == {"RESTOCK_SHELF"}


def test_at_most_one_open_alert_per_type() -> None:
    st = StateSeq()
    alerts, _ = run([st(0, 0) for _ in range(5)])
    assert [(a.type, a.status) for a in alerts] == [("OUT_OF_STOCK", "open")]


def test_redelivered_or_older_state_is_ignored() -> None:
    st = StateSeq()
    s1, s2 = st(3, 10), st(20, 10)
    engine, book = AlertEngine(), AlertBook()
    assert [a.status for a in engine.on_state(book, s1)] == ["open"]
    assert [a.status for a in engine.on_state(book, s2)] == ["resolved"]
    assert engine.on_state(book, s1) == []  # an old version arriving again changes nothing


def test_restock_ahead_of_shelf_out_when_projection_is_short() -> None:
    st = StateSeq()
    alerts, _ = run([st(12, 30, hours_to_shelf_out=1.5)])
    assert alerts and alerts[0].type == "RESTOCK_SHELF" and alerts[0].severity == "low"


def test_phantom_stock_after_two_gap_frames_and_alert_ids_are_deterministic() -> None:
    st = StateSeq()
    engine, book = AlertEngine(), AlertBook()
    engine.on_state(book, st(12, 30))
    obs = {"frame_uri": "file:///f/1.jpg", "boxes": [[1, 2, 3, 4]]}
    assert engine.on_observation(book, True, {**obs, "frame_event_id": "f1"}) == []
    assert engine.on_observation(book, True, {**obs, "frame_event_id": "f1"}) == []  # redelivery
    second = engine.on_observation(book, True, {**obs, "frame_event_id": "f2"})
    phantom = [a for a in second if a.type == "PHANTOM_STOCK"]
    assert phantom and phantom[0].evidence["observation"]["frame_uri"] == "file:///f/1.jpg"
    # Same inputs → same alert ids (replays are deterministic).
    engine2, book2 = AlertEngine(), AlertBook()
    st2 = StateSeq()
    engine2.on_state(book2, st2(12, 30))
    engine2.on_observation(book2, True, {**obs, "frame_event_id": "f1"})
    again = engine2.on_observation(book2, True, {**obs, "frame_event_id": "f2"})
    assert [a.alert_id for a in again] == [a.alert_id for a in second]
