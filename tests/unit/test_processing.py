"""The batch processors the agents call: redelivery, keys, bugs contained, quiet books."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import orjson
import pytest
from pydantic import ValidationError

from backroom.processing import AlertProcessor, InventoryProcessor, RawMessage
from backroom.settings import Settings
from backroom.state_codec import decode_state
from tests.factories import key, sale, scan


def state_dict(value: bytes) -> dict[str, Any]:
    return decode_state(value).to_dict()


def msgs(events: list[dict[str, Any]], topic: str = "backroom.scans", start: int = 0) -> list[RawMessage]:
    return [RawMessage(topic, 0, start + i, key(e).encode(), orjson.dumps(e)) for i, e in enumerate(events)]


def run(proc: InventoryProcessor, table: dict[str, Any], batch: list[RawMessage]) -> Any:
    res = proc.process(batch, table.get, lambda _k: None)
    table.update(res.states)
    return res


def test_redelivered_offsets_are_skipped_even_with_new_event_ids(settings: Settings) -> None:
    proc, table = InventoryProcessor(settings), {}
    run(proc, table, msgs([scan("receive", 10), scan("receive", 5)]))
    # After a crash Kafka redelivers from the last commit: same offsets, already applied.
    res = run(proc, table, msgs([scan("receive", 10), scan("receive", 5)]))
    assert res.duplicates == 2 and table["S1:A"]["backroom_qty"] == 15
    assert res.published and res.published[0].version == 2  # re-published for downstream


def test_wrong_or_missing_key_is_dead_lettered(settings: Settings) -> None:
    ev = sale()
    bad = [RawMessage("pos.sales", 0, 0, b"S1:B", orjson.dumps(ev)), RawMessage("pos.sales", 0, 1, None, orjson.dumps(ev))]
    res = InventoryProcessor(settings).process(bad, {}.get, lambda _k: None)
    assert [d.error for d in res.dead] == [
        "key 'S1:B' does not match store_id:sku 'S1:A'",
        "key None does not match store_id:sku 'S1:A'",
    ]


def test_a_bug_costs_one_event_not_the_batch(settings: Settings) -> None:
    proc, table = InventoryProcessor(settings), {}
    real_apply = proc.book.apply

    def flaky(state: Any, event: Any) -> bool:
        if event.event_id == "boom":
            raise ZeroDivisionError("float division by zero")
        return real_apply(state, event)

    with patch.object(proc.book, "apply", side_effect=flaky):
        res = run(proc, table, msgs([scan("receive", 10), scan("receive", 3, event_id="boom"), scan("receive", 2)]))
    assert len(res.dead) == 1 and res.dead[0].error.startswith("processing failed: ZeroDivisionError")
    assert table["S1:A"]["backroom_qty"] == 12 and res.applied == 2


def test_alert_books_are_written_only_when_they_change(settings: Settings) -> None:
    inv, alerts = InventoryProcessor(settings), AlertProcessor(settings)
    table: dict[str, Any] = {}
    books: dict[str, Any] = {}
    written = []
    events = [scan("receive", 100), scan("move_to_shelf", 20)] + [sale(minutes=1 + i) for i in range(10)]
    for i, ev in enumerate(events):
        topic = "backroom.scans" if "kind" in ev else "pos.sales"
        res = run(inv, table, [RawMessage(topic, 0, i, key(ev).encode(), orjson.dumps(ev))])
        for st in res.published:
            ares = alerts.process([RawMessage("inventory.state", 0, i, b"S1:A", st.to_json())], books.get)
            books.update(ares.books)
            written.append(bool(ares.books))
    # First state writes the book; quiet sales in between do not; none of them open an alert.
    assert written[0] and not any(written[2:])


def test_a_severity_update_is_written_to_the_book(settings: Settings) -> None:
    # Books round-trip through JSON as in the changelog: a severity changed in place in the
    # loaded book was not seen as a change, never written, and re-sent as an update every state.
    inv, alerts = InventoryProcessor(settings), AlertProcessor(settings)
    table: dict[str, Any] = {}
    stored: dict[str, bytes] = {}
    sent: list[Any] = []
    events = [scan("receive", 100), scan("move_to_shelf", 6)] + [sale(minutes=1 + i) for i in range(9)]
    for i, ev in enumerate(events):
        topic = "backroom.scans" if "kind" in ev else "pos.sales"
        res = run(inv, table, [RawMessage(topic, 0, i, key(ev).encode(), orjson.dumps(ev))])
        ares = alerts.on_states(res.published, lambda k: orjson.loads(stored[k]) if k in stored else None)
        stored.update({k: orjson.dumps(v) for k, v in ares.books.items()})
        sent += [(a.type, a.status, a.severity) for a in ares.alerts if a.type == "RESTOCK_SHELF"]
    assert sent[0][1] == "open" and sent[-1] == ("RESTOCK_SHELF", "update", "high")
    assert sum(s[1] == "update" and s[2] == "high" for s in sent) == 1
    assert orjson.loads(stored["S1:A"])["open"]["RESTOCK_SHELF"]["severity"] == "high"


def test_catalog_params_follow_the_entry(settings: Settings) -> None:
    from tests.factories import catalog_entry

    proc = InventoryProcessor(settings)
    catalog = {"*:A": catalog_entry("A", shelf_capacity=20)}
    first = proc.params(catalog.get, "S1", "A")
    assert first.shelf_capacity == 20 and proc.params(catalog.get, "S1", "A") is first
    catalog["*:A"] = catalog_entry("A", shelf_capacity=30)  # the entry is replaced
    assert proc.params(catalog.get, "S1", "A").shelf_capacity == 30
    catalog["S1:A"] = catalog_entry("A", shelf_capacity=0)  # invalid: raises every time
    for _ in range(2):
        with pytest.raises(ValidationError):
            proc.params(catalog.get, "S1", "A")
    assert proc.params(catalog.get, "S2", "A").shelf_capacity == 30


def test_processing_bench_reports_every_phase() -> None:
    from bench.processing import run

    out = run(events=400, keys=20, batch=100)
    assert out["events"] == 400 and out["keys"] == 20
    assert out["events_per_s"] > 0
    assert set(out["us_per_event"]) == {"process", "store", "alerts"}
    # Setting bytes in a dict can round to 0.0 µs; the other phases cannot.
    assert out["us_per_event"]["process"] > 0 and out["us_per_event"]["alerts"] > 0


def test_processing_bench_fill_brings_keys_to_the_soaks_size() -> None:
    from bench.processing import run

    small, filled = run(events=200, keys=20, batch=50), run(events=200, keys=20, batch=50, fill=16)
    # The pre-loaded sales are applied (not skipped as redeliveries), so the values are larger:
    # 16 dedup ids and deltas each, and the measured events still count as new.
    assert filled["fill"] == 16 and filled["value_bytes"] > small["value_bytes"] + 16 * 8
    assert filled["applied"] == filled["events"] == 200
    assert filled["us_per_event"]["process"] > 0 and filled["us_per_event"]["alerts"] > 0  # `store` may round to 0


# --- states kept live between batches (`LiveStates`) ----------------------------------------------


def _days_of_events(days: int = 3) -> list[list[RawMessage]]:
    """Batches of sales on two keys every 10 minutes, with receipts, moves and counts: hours
    and days close (the demand model learns, weekday sums are rounded when written)."""
    batches, offset = [], 0
    for b in range(days * 24):
        events = []
        for i in range(6):
            minutes = b * 60 + i * 9.7 + 0.3  # off the minute: censored fractions of hours
            for sku in ("A", "B"):
                events.append(("pos.sales", sale(sku=sku, qty=1 + (b + i) % 3, minutes=minutes)))
        if b == 0:  # A never runs out; B is empty for part of most hours
            events.append(("backroom.scans", scan("count", 5000, sku="A", location="shelf", minutes=1)))
        if b % 8 == 0:
            events.append(("backroom.scans", scan("receive", 40, sku="A", minutes=b * 60 + 5)))
            events.append(("backroom.scans", scan("move_to_shelf", 20, sku="A", minutes=b * 60 + 6)))
        events.append(("backroom.scans", scan("count", 7, sku="B", location="shelf", minutes=b * 60 + 7)))
        batch = []
        for topic, e in events:
            batch.append(RawMessage(topic, 0, offset, key(e).encode(), orjson.dumps(e)))
            offset += 1
        batches.append(batch)
    return batches


def test_a_state_kept_live_is_exactly_what_its_table_value_reads_back_as(settings: Settings) -> None:
    # One processor reads the very bytes it wrote (every key a hit after its first batch), the
    # other keeps nothing live (each state decoded from its value): the same values out.
    live = InventoryProcessor(settings)
    fresh = InventoryProcessor(settings.model_copy(update={"live_states": 0}))
    live_table: dict[str, bytes] = {}
    fresh_table: dict[str, bytes] = {}
    for batch in _days_of_events():
        a = live.process(batch, live_table.get, lambda _k: None)
        b = fresh.process(batch, lambda k: bytes(bytearray(fresh_table[k])) if k in fresh_table else None,
                          lambda _k: None)
        assert a.values == b.values
        assert [s.to_json() for s in a.published] == [s.to_json() for s in b.published]
        live_table.update(a.values)
        fresh_table.update(b.values)
    # Hours and whole days were learned (every field written must read back as it was kept:
    # `test_a_written_tracker_is_exactly_the_one_its_value_reads_back_as`).
    assert state_dict(live_table["S1:A"])["demand"]["days"] >= 2


def test_a_value_the_processor_did_not_write_is_read_from_the_table(settings: Settings) -> None:
    # A changelog replay (or any other writer) puts another bytes object in the table: that is
    # the state, not the one the processor still holds.
    proc, table = InventoryProcessor(settings), {}
    first = proc.process(msgs([scan("receive", 10)]), table.get, lambda _k: None)
    table.update(first.values)
    second = proc.process(msgs([scan("receive", 5)], start=1), table.get, lambda _k: None)
    table.update(second.values)
    assert state_dict(table["S1:A"])["backroom_qty"] == 15
    table["S1:A"] = bytes(bytearray(first.values["S1:A"]))  # the older value, replayed
    third = proc.process(msgs([scan("receive", 1)], start=2), table.get, lambda _k: None)
    assert state_dict(third.values["S1:A"])["backroom_qty"] == 11


def test_a_copy_of_the_bytes_written_is_served_live(settings: Settings) -> None:
    # A disk store hands out a new bytes object per read: equal bytes are the state written.
    proc, table = InventoryProcessor(settings), {}
    table.update(proc.process(msgs([scan("receive", 10)]), table.get, lambda _k: None).values)
    copies = {k: bytes(bytearray(v)) for k, v in table.items()}
    again = proc.process(msgs([scan("receive", 5)], start=1), copies.get, lambda _k: None)
    assert proc.live.hits == 1 and state_dict(again.values["S1:A"])["backroom_qty"] == 15


def test_a_batch_that_fails_half_way_leaves_no_half_applied_state_behind(settings: Settings) -> None:
    proc, table = InventoryProcessor(settings), {}
    table.update(proc.process(msgs([scan("receive", 10)]), table.get, lambda _k: None).values)
    batch = msgs([scan("receive", 5)], start=1)
    with patch.object(proc, "_finish", side_effect=RuntimeError("lost the broker")):
        with pytest.raises(RuntimeError):
            proc.process(batch, table.get, lambda _k: None)  # applied to the state, never written
    # Redelivered, the batch is applied once to what the table holds.
    again = proc.process(batch, table.get, lambda _k: None)
    assert state_dict(again.values["S1:A"])["backroom_qty"] == 15 and again.applied == 1


def test_live_states_can_be_turned_off(settings: Settings) -> None:
    proc, table = InventoryProcessor(settings.model_copy(update={"live_states": 0})), {}
    for batch in _days_of_events(days=1)[:3]:
        res = proc.process(batch, table.get, lambda _k: None)
        table.update(res.values)
    assert not proc.live._states and state_dict(table["S1:A"])["version"] > 1


def test_a_far_future_event_is_dead_lettered_and_does_not_move_the_clock(settings: Settings) -> None:
    proc, table = InventoryProcessor(settings), {}
    run(proc, table, msgs([scan("receive", 10)]))
    clock = table["S1:A"]["ts"]
    bad = sale(ts="2100-12-31T00:00:00Z")
    res = run(proc, table, msgs([bad, sale(minutes=5)], topic="pos.sales", start=0))
    assert len(res.dead) == 1 and res.dead[0].error.startswith("far-future ts: 2100-12-31T00:00:00Z")
    assert "store S1's latest event" in res.dead[0].error
    assert table["S1:A"]["ts"] != "2100-12-31T00:00:00Z" and table["S1:A"]["ts"] >= clock
    assert table["S1:A"]["shelf_qty"] == -1 and res.applied == 1  # only the valid sale counted
    # A fresh processor (a restart) still judges by the SKU's stored clock.
    again = run(InventoryProcessor(settings), table, msgs([bad], topic="pos.sales", start=2))
    assert len(again.dead) == 1
    # BACKROOM_MAX_FUTURE_HOURS=0 turns the rule off.
    off = settings.model_copy(update={"max_future_hours": 0})
    assert not run(InventoryProcessor(off), dict(table), msgs([bad], topic="pos.sales", start=3)).dead
