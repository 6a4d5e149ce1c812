"""Inventory math: the kind semantics of scans, sales, never negative, idempotence."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson

from backroom.inventory import (
    COUNT_GRACE,
    RECENT_MAX,
    RECENT_PRUNE_AT,
    InventoryBook,
    SeenIds,
    SkuParams,
    SkuState,
    _delta,
    micros,
    to_inventory_state,
)
from backroom.records import Sale, Scan, decode
from tests.factories import T0, sale, scan


def ev(d: dict) -> Sale | Scan:
    return decode(Scan if "kind" in d else Sale, orjson.dumps(d))


def apply_all(events: list[dict], state: SkuState | None = None) -> SkuState:
    book = InventoryBook(dedup_window=8)
    state = state or SkuState("S1", "A")
    for d in events:
        book.apply(state, ev(d))
    return state


PARAMS = SkuParams(shelf_capacity=20, min_shelf_qty=5, lead_time_hours=24, case_pack=6)


def test_receive_move_sell() -> None:
    s = apply_all([scan("receive", 24), scan("move_to_shelf", 10, minutes=1), sale(qty=3, minutes=2)])
    assert (s.shelf_qty, s.backroom_qty) == (7, 14)


def test_receive_onto_the_shelf_and_against_on_order() -> None:
    state = SkuState("S1", "A", on_order=12)
    s = apply_all([scan("receive", 5, location="shelf")], state)
    assert (s.shelf_qty, s.backroom_qty, s.on_order) == (5, 0, 7)


def test_counts_reset_the_location_they_name() -> None:
    s = apply_all([scan("receive", 10), scan("move_to_shelf", 5), scan("count", 2, location="shelf"),
                   scan("count", 9)])
    assert (s.shelf_qty, s.backroom_qty) == (2, 9)


def test_published_quantities_are_never_negative() -> None:
    s = apply_all([scan("receive", 2), scan("adjust", -5), sale(qty=4)])
    out = to_inventory_state(s, PARAMS)
    assert (out.shelf_qty, out.backroom_qty) == (0, 0)
    assert (s.shelf_qty, s.backroom_qty) == (-4, -3)  # the ledgers remember the inaccuracy


def test_arrival_order_across_topics_does_not_change_the_result() -> None:
    import itertools

    events = [scan("receive", 30, minutes=0), scan("move_to_shelf", 20, minutes=1),
              sale(qty=3, minutes=2), sale(qty=2, minutes=3), scan("adjust", -1, minutes=4)]
    results = {
        (s.shelf_qty, s.backroom_qty)
        for order in itertools.permutations(events)
        for s in [apply_all(list(order))]
    }
    assert results == {(15, 9)}


def test_a_late_count_keeps_the_later_deltas_that_arrived_before_it() -> None:
    s = apply_all([scan("receive", 50), scan("move_to_shelf", 20, minutes=1), sale(qty=3, minutes=10),
                   scan("count", 15, location="shelf", minutes=5), sale(qty=1, minutes=4)])
    assert s.shelf_qty == 12  # counted 15 at 09:05, then the 09:10 sale; the 09:04 one is in the count
    older = apply_all([scan("count", 9, location="shelf", minutes=8), scan("count", 30, location="shelf", minutes=2)])
    assert older.shelf_qty == 9  # an older count arriving late changes nothing


def test_stamps_in_other_zones_compare_in_time_order() -> None:
    s = apply_all([sale(minutes=60), scan("count", 5, location="shelf", minutes=0)])
    late = sale(minutes=0)
    late["ts"] = "2026-11-27T10:30:00+01:00"  # 09:30Z: after the count, before the first sale
    s = apply_all([late], s)
    assert s.shelf_qty == 3 and s.ts is not None and s.ts.startswith("2026-11-27T10:00")


def test_a_count_absorbs_earlier_deltas_that_arrive_late() -> None:
    s = apply_all([scan("count", 10, location="shelf", minutes=5), sale(qty=2, minutes=3),
                   sale(qty=1, minutes=6)])
    assert s.shelf_qty == 9  # the sale at 09:03 is already in the 09:05 count


def test_repeated_event_id_changes_nothing() -> None:
    book = InventoryBook()
    state = SkuState("S1", "A")
    receive = ev(scan("receive", 10))
    assert book.apply(state, receive)
    before = state.to_dict()
    assert not book.apply(state, receive)
    assert state.to_dict() == before


def test_dedup_window_is_bounded() -> None:
    s = apply_all([scan("receive", 1) for _ in range(20)])
    assert len(s.seen) == 8 and s.backroom_qty == 20


def test_state_round_trips_through_the_table_format() -> None:
    s = apply_all([scan("receive", 10), scan("move_to_shelf", 6), sale(qty=2, minutes=90)])
    again = SkuState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    assert again.to_dict() == s.to_dict()


def test_event_time_clock_never_runs_backwards() -> None:
    s = apply_all([sale(minutes=10), scan("receive", 5, minutes=5)])
    assert s.ts is not None and s.ts.startswith("2026-11-27T09:10")


def test_demand_rate_learns_closed_hours_and_censors_empty_shelf_hours() -> None:
    events = [scan("receive", 100), scan("move_to_shelf", 100)]
    for hour in range(6):
        events += [sale(qty=1, minutes=hour * 60 + m) for m in (5, 25, 45)]  # 3/hour
    s = apply_all(events)
    assert abs(s.demand.rate - 3.0) < 1e-6
    # An hour spent with an empty shelf (sales recorded against zero stock) is not learned.
    empty = SkuState("S1", "B")
    apply_all([sale(sku="B", minutes=0), sale(sku="B", minutes=70)], empty)
    assert empty.demand.hours_seen == 0


def test_projection_to_inventory_state() -> None:
    s = apply_all([scan("receive", 30), scan("move_to_shelf", 10)])
    s.demand.rate = 2.0
    out = to_inventory_state(s, PARAMS)
    assert out.hours_to_shelf_out == 5.0 and out.hours_to_stockout == 15.0
    assert out.shelf_capacity == 20 and out.version == 2


def test_vision_fill_pulls_a_low_record_up_but_never_hides_a_gap() -> None:
    book = InventoryBook()
    s = apply_all([scan("count", 2, location="shelf")])
    # 9 of 10 facings (2 units deep) show stock: more than 8 facings' worth, so at least 17.
    assert book.apply_vision(s, fill=0.9, confidence=0.9, params=PARAMS, facings=10)
    assert s.shelf_qty == 17 and s.shelf_seen_max is None
    assert not book.apply_vision(s, fill=0.0, confidence=0.95, params=PARAMS, facings=10)
    assert s.shelf_qty == 17 and s.vision_fill == 0.0
    assert s.shelf_seen_max == 0  # the projections see the gap; the records wait for a recount


def test_a_view_with_fewer_facings_bounds_the_shelf_estimate_until_a_count() -> None:
    # Records drift above the shelf (theft): 16 recorded, the camera shows 3 of 10 facings (2
    # deep), so at most 6 units are there. The records stand (PHANTOM_STOCK and a recount decide)
    # but the projections and RESTOCK_SHELF work from 6, less each sale since.
    book = InventoryBook()
    s = apply_all([scan("count", 16, location="shelf")])
    assert not book.apply_vision(s, fill=0.3, confidence=0.9, params=PARAMS, facings=10)
    assert s.shelf_qty == 16 and s.shelf_seen_max == 6 and s.shelf_estimate == 6
    book.apply(s, ev(sale(qty=2, minutes=5)))
    assert s.shelf_qty == 14 and s.shelf_estimate == 4
    assert to_inventory_state(s, PARAMS).shelf_seen_max == 4
    assert to_inventory_state(s, PARAMS).shelf_qty == 14
    # A view that allows the records, or a count, ends the bound.
    book.apply(s, ev(scan("count", 4, location="shelf", minutes=10)))
    assert s.shelf_seen_max is None and s.shelf_estimate == 4
    # Unsure views change nothing.
    assert not book.apply_vision(s, fill=0.1, confidence=0.3, params=PARAMS, facings=10)
    assert s.shelf_seen_max is None


def test_a_view_processed_after_later_shelf_events_counts_them() -> None:
    # The frame was taken at minute 10, when 3 of 10 facings showed; a move of 12 at minute 12
    # was processed first (another agent). The bounds are as of the frame plus what came after.
    book = InventoryBook()
    s = apply_all([scan("count", 9, location="shelf"), scan("move_to_shelf", 12, minutes=12)])
    assert s.shelf_qty == 21
    frame_us = micros(T0 + timedelta(minutes=10))
    book.apply_vision(s, fill=0.3, confidence=0.9, params=PARAMS, facings=10, us=frame_us)
    assert s.shelf_seen_max == 18  # at most 6 at minute 10, + 12 since (records say 21)
    # Without the stamp the move would be ignored: a bound of 6 on a shelf just filled.
    s2 = apply_all([scan("count", 9, location="shelf"), scan("move_to_shelf", 12, minutes=12)])
    book.apply_vision(s2, fill=0.3, confidence=0.9, params=PARAMS, facings=10)
    assert s2.shelf_seen_max == 6


def test_dedup_window_forgets_the_oldest_ids_first() -> None:
    seen = SeenIds()
    for i in range(10):
        seen.add(f"e-{i}", limit=4)
    assert len(seen) == 4
    assert "e-9" in seen and "e-6" in seen and "e-5" not in seen and "e-0" not in seen


def test_seen_ids_match_only_whole_digests() -> None:
    # The bytes of an id's digest straddling two stored digests must not count as seen.
    c = SeenIds.digest("c")
    seen = SeenIds(b"\x00" * 3 + c + b"\x00" * 5 + SeenIds.digest("a"))
    assert len(seen) == 3 and seen.buf.find(c) == 3
    assert "c" not in seen and "a" in seen


def test_add_new_is_in_then_add() -> None:
    seen = SeenIds()
    assert seen.add_new("a", limit=2) and seen.add_new("b", limit=2)
    assert not seen.add_new("a", limit=2) and len(seen) == 2
    assert seen.add_new("c", limit=2) and "a" not in seen and "c" in seen
    # Only whole digests count, as for `in`.
    c = SeenIds.digest("c")
    straddled = SeenIds(b"\x00" * 3 + c + b"\x00" * 5)
    assert straddled.add_new("c", limit=8) and len(straddled) == 3


class _RecentReference:
    """`recent` as the original rule computes it: filter the whole list on every delta past
    RECENT_PRUNE_AT, against the newest stamp seen."""

    def __init__(self) -> None:
        self.recent: list[list[object]] = []
        self.newest: str | None = None

    def add(self, stamp: str, loc: str, qty: int) -> None:
        self.recent.append([stamp, loc, qty])
        if len(self.recent) > RECENT_PRUNE_AT:
            top = max(stamp, self.newest or stamp)
            horizon = (datetime.fromisoformat(top) - COUNT_GRACE).astimezone(UTC).isoformat()
            self.recent = [r for r in self.recent if r[0] >= horizon]
            if len(self.recent) > RECENT_MAX:
                self.recent = sorted(self.recent, key=lambda r: str(r[0]))[-RECENT_MAX:]
        self.newest = stamp if self.newest is None or stamp > self.newest else self.newest


def test_a_fast_skus_recent_deltas_stay_bounded_and_counts_stay_right() -> None:
    # 10 sales a second for 40 minutes: only the last RECENT_MAX deltas are kept (COUNT_GRACE
    # would hold 18,000 of them).
    book, state = InventoryBook(dedup_window=8), SkuState("S1", "A", shelf_qty=10**6)
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    n = 10 * 60 * 40
    for i in range(n):
        book.apply(state, Sale(event_id=f"s-{i}", ts=t0 + timedelta(seconds=i / 10), store_id="S1", sku="A", qty=1))
    assert len(state.recent) == RECENT_MAX
    assert state.recent[0][0] == (t0 + timedelta(seconds=(n - RECENT_MAX) / 10)).isoformat()
    assert state.shelf_qty == 10**6 - n
    # A count 2 s late (20 sales stamped after it already applied) keeps exactly those sales.
    count = Scan(event_id="c-1", ts=t0 + timedelta(seconds=(n - 21) / 10), store_id="S1", sku="A",
                 kind="count", qty=40000, location="shelf")
    book.apply(state, count)
    assert state.shelf_qty == 40000 - 20
    # The state round-trips through the table format, and stays bounded after a reload.
    again = SkuState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert again.recent == state.recent
    for i in range(100):
        book.apply(again, Sale(event_id=f"s-x{i}", ts=t0 + timedelta(minutes=41, seconds=i), store_id="S1",
                               sku="A", qty=1))
    assert len(again.recent) == RECENT_MAX and again.shelf_qty == 40000 - 20 - 100


def test_pruning_recent_deltas_matches_filtering_the_whole_list() -> None:
    # In order, late deltas, stamps with and without microseconds: the same deltas survive as
    # filtering the whole list at every delta, in stamp order.
    rng = random.Random(3)
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    for late_share in (0.0, 0.02, 0.3):
        reference = _RecentReference()
        t = t0
        state = SkuState("S1", "A")
        for i in range(3000):
            t += timedelta(seconds=rng.choice([0.02, 0.5, 1, 7, 60]))
            when = t - timedelta(minutes=rng.choice([1, 20, 45])) if rng.random() < late_share else t
            stamp = when.isoformat()
            loc = rng.choice(["shelf", "backroom"])
            reference.add(stamp, loc, 1)
            us = micros(when)
            _delta(state, loc, 1, us)
            state.clock_us = us if state.clock_us is None or us > state.clock_us else state.clock_us
            if i % 500 == 499:  # a reload from the table: order not known
                state = SkuState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
            # Kept in stamp order (order carries no meaning; a stable sort of the arrivals).
            assert state.recent == sorted(reference.recent, key=lambda r: str(r[0])), (late_share, i)
