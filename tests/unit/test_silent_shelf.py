"""The silent-shelf watch: P(no sale) under the forecast, CHECK_SHELF open and resolve.

    pytest tests/unit/test_silent_shelf.py
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from backroom.silent_shelf import SilentShelf, crossing_time, expected_units, p_no_sale

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC).timestamp()  # a Tuesday, 10:00 UTC
H = 3600.0


def flat(rate: float):
    return lambda hour: rate


def open_hours(rate: float):
    return lambda hour: rate if 7 <= hour % 24 < 23 else 0.0


def test_fast_seller_silent_for_an_hour_is_improbable_slow_seller_is_not() -> None:
    fast = p_no_sale(flat(8.0), T0, T0 + H)  # 8 units/h, one hour of silence
    slow = p_no_sale(flat(0.2), T0, T0 + H)  # 0.2 units/h, the same hour
    assert fast == pytest.approx(math.exp(-8.0))
    assert slow == pytest.approx(math.exp(-0.2))
    assert fast < 0.001 < 0.5 < slow
    watch = SilentShelf(threshold=0.01)
    for sku, rate in (("FAST", 8.0), ("SLOW", 0.2)):
        watch.observe("S1", sku, shelf=1, last_sale=T0, looked=None, rate_at=flat(rate), ready=True, now=T0)
    opened = watch.advance(T0 + H)
    assert [(a.sku, a.type, a.status) for a in opened] == [("FAST", "CHECK_SHELF", "open")]
    assert opened[0].evidence["p_no_sale"] < 0.01 and opened[0].evidence["silent_hours"] == 1.0
    # The slow seller needs ln(100)/0.2 = 23 h of silence for the same evidence.
    assert watch.advance(T0 + 22 * H) == []
    later = watch.advance(T0 + 24 * H)
    assert [a.sku for a in later] == ["SLOW"]


def test_a_closed_night_costs_nothing() -> None:
    evening = datetime(2026, 11, 24, 22, 30, tzinfo=UTC).timestamp()
    # 2 units/h while open: 30 min to closing is 1 unit, the night 0, so by 07:00 P = e^-1.
    assert expected_units(open_hours(2.0), evening, evening + 8.5 * H) == pytest.approx(1.0)
    watch = SilentShelf(threshold=0.01)
    watch.observe("S1", "A", shelf=1, last_sale=evening, looked=None, rate_at=open_hours(2.0), ready=True, now=evening)
    assert watch.advance(evening + 8.5 * H) == []
    # ln(100) = 4.605 units: 1 before closing, 3.605 after opening = 1.80 h after 07:00.
    due = crossing_time(open_hours(2.0), evening, math.log(100), 48)
    assert due is not None and (due - evening) / H == pytest.approx(8.5 + (math.log(100) - 1) / 2, abs=1e-6)
    assert len(watch.advance(due)) == 1


def test_only_while_records_say_the_shelf_has_stock_and_the_model_is_ready() -> None:
    watch = SilentShelf(threshold=0.01)
    watch.observe("S1", "EMPTY", shelf=0, last_sale=T0, looked=None, rate_at=flat(8.0), ready=True, now=T0)
    watch.observe("S1", "NEW", shelf=9, last_sale=T0, looked=None, rate_at=flat(8.0), ready=False, now=T0)
    assert watch.advance(T0 + 5 * H) == []


@pytest.mark.parametrize("how", ["sale", "look", "empty"])
def test_resolved_by_a_sale_a_look_or_the_records_reaching_zero(how: str) -> None:
    watch = SilentShelf(threshold=0.01)
    watch.observe("S1", "A", shelf=6, last_sale=T0, looked=None, rate_at=flat(4.0), ready=True, now=T0)
    [opened] = watch.advance(T0 + 2 * H)
    t = T0 + 2.5 * H
    kwargs = {"sale": {"last_sale": t, "looked": None, "shelf": 5}, "look": {"last_sale": None, "looked": t, "shelf": 6},
              "empty": {"last_sale": None, "looked": None, "shelf": 0}}[how]
    [resolved] = watch.observe("S1", "A", rate_at=flat(4.0), ready=True, now=t, **kwargs)  # type: ignore[arg-type]
    assert (resolved.alert_id, resolved.status, resolved.type) == (opened.alert_id, "resolved", "CHECK_SHELF")
    # An event that is neither (a receive into the backroom) leaves an open alert open.
    watch2 = SilentShelf(threshold=0.01)
    watch2.observe("S1", "A", shelf=6, last_sale=T0, looked=None, rate_at=flat(4.0), ready=True, now=T0)
    watch2.advance(T0 + 2 * H)
    assert watch2.observe("S1", "A", shelf=6, last_sale=None, looked=None, rate_at=flat(4.0), ready=True, now=t) == []
    assert watch2.advance(T0 + 9 * H) == []  # one open alert per key, not one per sweep


def test_silence_restarts_at_a_look_and_ids_are_deterministic() -> None:
    def run() -> list[str]:
        watch = SilentShelf(threshold=0.05)
        watch.observe("S1", "A", shelf=1, last_sale=T0, looked=None, rate_at=flat(3.0), ready=True, now=T0)
        # Counted 0.5 h later: the silence is measured from the count.
        watch.observe("S1", "A", shelf=1, last_sale=None, looked=T0 + 0.5 * H, rate_at=flat(3.0), ready=True,
                      now=T0 + 0.5 * H)
        assert watch.advance(T0 + 1.2 * H) == []  # ln(20)/3 = 1.0 h after T0, but not after the count
        return [a.alert_id for a in watch.advance(T0 + 1.6 * H)]

    first = run()
    assert len(first) == 1 and run() == first


def test_threshold_is_checked() -> None:
    with pytest.raises(ValueError):
        SilentShelf(threshold=1.5)


def _feed(proc, table, events, topic):
    import orjson

    from backroom.processing import RawMessage
    from tests.factories import key

    off = _feed.__dict__.setdefault("off", {"pos.sales": 0, "backroom.scans": 0})
    batch = []
    for e in events:
        off[topic] += 1
        batch.append(RawMessage(topic, 0, off[topic], key(e).encode(), orjson.dumps(e)))
    res = proc.process(batch, table.get, lambda _k: None)
    table.update(res.states)
    return res


def test_the_worker_raises_check_shelf_as_event_time_advances(settings_factory) -> None:
    """Through InventoryProcessor: A sells 4 an hour for three days, then goes silent with stock
    on the shelf in the records; B's sales move event time on, and A's silence becomes improbable
    without a single event of A. A count of A's shelf resolves it."""
    from backroom.processing import InventoryProcessor
    from tests.factories import sale, scan

    proc, table = InventoryProcessor(settings_factory(silent_shelf=True, silent_shelf_threshold=1e-4)), {}
    _feed(proc, table, [scan("receive", 400, sku=s) for s in "AB"] + [scan("move_to_shelf", 40, sku=s) for s in "AB"],
          "backroom.scans")
    alerts = []
    for m in range(0, 72 * 60, 15):  # both sell one every 15 minutes, for three days
        res = _feed(proc, table, [sale(sku="A", minutes=m), sale(sku="B", minutes=m)], "pos.sales")
        alerts += res.alerts
        if m % (24 * 60) == 0:
            _feed(proc, table, [scan("move_to_shelf", 100, sku=s, minutes=m) for s in "AB"], "backroom.scans")
    assert alerts == [] and proc.silent is not None and proc.silent.watches["S1:A"].rates
    # Its gaps taught the watch its scale: 15-minute gaps at ~4 an hour, about one unit each.
    assert proc.silent.watches["S1:A"].scale == pytest.approx(1.0, abs=0.25)
    # A shelf count finds 2 (theft): the silence starts there, with 2 in the records.
    last_a = 72 * 60 - 10
    _feed(proc, table, [scan("count", 2, sku="A", minutes=last_a, location="shelf")], "backroom.scans")
    opened = []
    for m in range(72 * 60, 72 * 60 + 240, 15):  # only B sells now
        opened += _feed(proc, table, [sale(sku="B", minutes=m)], "pos.sales").alerts
        if opened:
            break
    assert [(a.sku, a.type, a.status) for a in opened] == [("A", "CHECK_SHELF", "open")]
    silent_h = opened[0].evidence["silent_hours"]
    # ln(1e4) = 9.2 units + 0.5 for the second unit in the records, at ~4 an hour and a scale of
    # about 1: a little over two hours of silence, not more than three.
    assert 2.0 <= silent_h <= 3.0 and (m - last_a) / 60 == pytest.approx(silent_h, abs=0.26)
    res = _feed(proc, table, [scan("count", 0, sku="A", minutes=m + 5, location="shelf")], "backroom.scans")
    assert [(a.alert_id, a.status) for a in res.alerts] == [(opened[0].alert_id, "resolved")]


def test_on_by_default_and_off_when_switched_off(settings, settings_factory) -> None:
    from backroom.processing import InventoryProcessor

    assert InventoryProcessor(settings).silent is not None
    assert InventoryProcessor(settings_factory(silent_shelf=False)).silent is None


def _sell(watch: SilentShelf, sku: str, rate: float, gaps_h: list[float], shelf: int = 1, qty: int = 1) -> float:
    """Sales of `qty` units of one SKU, one after each gap, forecast at `rate` an hour: the
    watch learns the key's hour profile (2 days), then its silences."""
    t = T0
    watch.observe("S1", sku, shelf=shelf, last_sale=t, looked=None, rate_at=flat(rate), ready=True, now=t)
    for g in gaps_h:
        t += g * H
        watch.observe("S1", sku, shelf=shelf, last_sale=t, looked=None, rate_at=flat(rate), ready=True, now=t,
                      sales=[(t, qty)])
    return t


def test_the_bound_is_learnt_from_the_keys_own_silences() -> None:
    """Two SKUs selling 2 units an hour: one a unit every half hour (silences of one expected
    unit), the other two units every hour (silences of two: not Poisson in units). The second's
    scale grows to 2, so its silence must run twice as long before CHECK_SHELF."""
    watch = SilentShelf(threshold=1e-3)
    t_one = _sell(watch, "ONES", 2.0, [0.5] * 300)
    t_three = _sell(watch, "THREES", 2.0, [1.0] * 300, qty=2)
    w_one, w_three = watch.watches["S1:ONES"], watch.watches["S1:THREES"]
    assert w_one.scale == pytest.approx(1.0, abs=0.1) and w_three.scale == pytest.approx(2.0, abs=0.2)
    ln = math.log(1e3)
    assert watch.bound("S1:ONES", w_one) == pytest.approx(w_one.scale * ln)
    assert watch.bound("S1:THREES", w_three) == pytest.approx(w_three.scale * ln)
    assert w_one.due is not None and w_three.due is not None
    # Due when the silence's expected units reach the bound.
    assert expected_units(w_one.rate_at, t_one, w_one.due) == pytest.approx(w_one.scale * ln)
    assert expected_units(w_three.rate_at, t_three, w_three.due) == pytest.approx(w_three.scale * ln)
    assert (w_three.due - t_three) > 1.8 * (w_one.due - t_one)
    assert [a.sku for a in watch.advance(w_one.due)] == ["ONES"]
    opened = watch.advance(w_three.due)
    assert [a.sku for a in opened] == ["THREES"]
    ev = opened[0].evidence
    assert ev["scale"] == pytest.approx(w_three.scale, abs=1e-3) and ev["p_no_sale"] == pytest.approx(1e-3, rel=0.01)
    assert ev["p_poisson"] < 1e-5  # what the uncalibrated test would have said


def test_each_recorded_unit_asks_more_evidence_and_the_worst_silence_is_remembered() -> None:
    watch = SilentShelf(threshold=1e-3)
    _sell(watch, "ONE", 2.0, [0.5] * 150, shelf=1)
    _sell(watch, "TEN", 2.0, [0.5] * 150, shelf=10)
    one, ten = watch.watches["S1:ONE"], watch.watches["S1:TEN"]
    # Ten units in the records: 9 x 0.5 nats more (an empty shelf needs 10 units gone unrecorded).
    assert watch.bound("S1:TEN", ten) - watch.bound("S1:ONE", one) == pytest.approx(4.5 * one.scale, rel=1e-6)
    # A key that once waited ~6 expected units for a sale with stock on the shelf (an ordinary if
    # rare gap) alerts only past 1.5 x that, above its scale x ln(1000).
    _sell(watch, "GAPPY", 2.0, [0.5] * 150 + [3.0] + [0.5] * 5)
    gappy = watch.watches["S1:GAPPY"]
    assert 5.0 < gappy.worst / 0.995**5 <= 6.0  # 3 h at up to 2 an hour
    assert watch.bound("S1:GAPPY", gappy) == pytest.approx(1.5 * gappy.worst)
    assert 1.5 * gappy.worst > gappy.scale * math.log(1e3)


def test_a_false_alarm_makes_that_silence_an_ordinary_one_for_the_key() -> None:
    watch = SilentShelf(threshold=1e-3)
    t = _sell(watch, "A", 2.0, [0.5] * 150)
    w = watch.watches["S1:A"]
    r = w.rate_at(int(t // H))  # the rate of its hour of day
    [opened] = watch.advance(t + 4 * H)  # ~7.7 units expected, past ln(1000) x scale
    # Staff count the shelf 45 minutes later and find it stocked: the count resolves the alert,
    # and the feedback says that ~9-unit silence was an ordinary one for this key.
    look = t + 4.75 * H
    e_silence = expected_units(w.rate_at, t, look)
    [resolved] = watch.observe("S1", "A", shelf=1, last_sale=None, looked=look, rate_at=flat(2.0), ready=True, now=look)
    assert resolved.status == "resolved" and resolved.alert_id == opened.alert_id
    assert w.last_e == pytest.approx(e_silence) and e_silence > 4.0 * r
    before = watch.bound("S1:A", w)
    watch.false_alarm("S1:A")
    after = watch.bound("S1:A", w)
    assert before == pytest.approx(math.log(1e3) * w.scale) and after == pytest.approx(1.5 * e_silence)
    assert w.due is not None and w.due - look > 1.4 * (4.75 * H)  # rescheduled at once
    assert watch.advance(w.due - 60) == []  # as long a silence again: no longer enough for this key
    assert [a.sku for a in watch.advance(w.due)] == ["A"]


def test_false_alarms_ask_more_evidence_of_the_whole_store_bounded_and_reversible() -> None:
    """False alarms rarely repeat on one key, so each report also halves the threshold of every
    key in the store (at most 6 steps); `undo` takes a step back; other stores are untouched."""
    watch = SilentShelf(threshold=1e-3)
    for sku in ("A", "B"):
        _sell(watch, sku, 2.0, [0.5] * 150)
    watch.observe("S2", "A", shelf=1, last_sale=T0, looked=None, rate_at=flat(2.0), ready=True, now=T0)
    b = watch.watches["S1:B"]
    before = watch.bound("S1:B", b)
    watch.false_alarm("S1:A")  # A's staff found stock
    assert watch.threshold_for("S1:B") == pytest.approx(5e-4) and watch.threshold_for("S2:A") == 1e-3
    assert watch.bound("S1:B", b) == pytest.approx(before + b.scale * math.log(2))
    assert b.due is not None and expected_units(b.rate_at, b.since, b.due) == pytest.approx(watch.bound("S1:B", b))
    for _ in range(10):
        watch.false_alarm("S1:A")
    assert watch.store_steps == {"S1": 6} and watch.threshold_for("S1:B") == pytest.approx(1e-3 / 64)
    watch.undo_false_alarm("S1:B")
    assert watch.store_steps == {"S1": 5}
