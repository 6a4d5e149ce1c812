"""The dashboard's live view and hub: snapshot store, alert lifecycle, heatmap, coalescing.

    pytest tests/unit/test_dashboard_live.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from dashboard.hub import Hub
from dashboard.live import (
    STATE_FIELDS,
    AlertNotOpen,
    LiveView,
    UnknownAlert,
    parse_ts,
    sku_risk,
    to_wire,
)


def state(sku: str = "A", store: str = "S1", version: int = 1, minute: int = 0, **kw: Any) -> dict[str, Any]:
    rec = {
        "ts": f"2026-11-27T09:{minute:02d}:00Z", "store_id": store, "sku": sku, "shelf_qty": 10,
        "backroom_qty": 20, "shelf_capacity": 20, "min_shelf_qty": 4, "demand_per_hour": 1.0,
        "version": version, "category": "dairy",
    }
    rec.update(kw)
    return rec


def alert(aid: str = "a1", status: str = "open", sku: str = "A", store: str = "S1", minute: int = 0,
          **kw: Any) -> dict[str, Any]:
    rec = {
        "alert_id": aid, "ts": f"2026-11-27T09:{minute:02d}:00Z", "store_id": store, "sku": sku,
        "type": "RESTOCK_SHELF", "status": status, "severity": "medium", "message": "m",
        "action": "move 5 units", "evidence": {"shelf_qty": 3},
    }
    rec.update(kw)
    return rec


def test_latest_state_wins_and_stale_versions_are_ignored() -> None:
    v = LiveView()
    assert v.apply_state(state(version=2, shelf_qty=7))
    assert not v.apply_state(state(version=1, shelf_qty=99))  # a redelivered older state
    assert not v.apply_state(state(version=2, shelf_qty=99))
    assert v.states["S1:A"]["shelf_qty"] == 7
    assert v.apply_state(state(version=3, shelf_qty=5))
    assert v.states["S1:A"]["shelf_qty"] == 5


def test_records_without_keys_are_counted_not_applied() -> None:
    v = LiveView()
    assert not v.apply_state({"sku": "A"})
    assert not v.apply_alert({"alert_id": "x", "status": "weird"})
    assert not v.apply_observation({"store_id": 3})
    assert v.counts["ignored"] == 3 and not v.states and not v.alerts


def test_now_is_the_newest_event_time_not_the_wall_clock() -> None:
    v = LiveView()
    v.apply_state(state(minute=30))
    v.apply_state(state(sku="B", minute=10))  # older event: time does not go back
    assert v.now == parse_ts("2026-11-27T09:30:00Z")
    v.apply_alert(alert(minute=45))
    assert v.now == parse_ts("2026-11-27T09:45:00Z")


def test_drain_coalesces_to_the_latest_value_per_key() -> None:
    v = LiveView()
    for i in range(1, 101):
        v.apply_state(state(version=i, shelf_qty=i % 20))
    v.apply_state(state(sku="B", version=1))
    delta = v.drain()
    assert delta is not None and delta["seq"] == 1
    by_sku = {s["sku"]: s for s in delta["states"]}
    assert len(delta["states"]) == 2 and by_sku["A"]["version"] == 100
    assert by_sku["A"]["shelf_qty"] == 100 % 20
    assert [c["category"] for c in delta["cells"]] == ["dairy"]
    assert v.drain() is None  # nothing changed since
    v.apply_state(state(version=101))
    again = v.drain()
    assert again is not None and again["seq"] == 2 and len(again["states"]) == 1


def test_heatmap_aggregates_availability_and_risk_by_store_and_category() -> None:
    v = LiveView()
    v.apply_state(state("A", shelf_qty=10))  # fine
    v.apply_state(state("B", shelf_qty=0, backroom_qty=0))  # out of stock: risk 1
    v.apply_state(state("C", shelf_qty=0, backroom_qty=5))  # empty shelf: risk 0.8
    v.apply_state(state("D", shelf_qty=3))  # at/below minimum: risk 0.6
    v.apply_state(state("E", store="S2", category="bakery"))
    cells = {(c["store_id"], c["category"]): c for c in v.heatmap()}
    assert set(cells) == {("S1", "dairy"), ("S2", "bakery")}
    dairy = cells[("S1", "dairy")]
    assert dairy["skus"] == 4 and dairy["availability"] == 0.5
    assert dairy["risk"] == pytest.approx((0 + 1 + 0.8 + 0.6) / 4)
    assert cells[("S2", "bakery")]["risk"] == 0 and cells[("S2", "bakery")]["availability"] == 1


def test_a_sku_changing_category_moves_cells() -> None:
    v = LiveView()
    v.apply_state(state("A", category="dairy"))
    v.apply_state(state("B", category="dairy"))
    v.drain()
    v.apply_state(state("A", version=2, category="frozen"))
    delta = v.drain()
    assert delta is not None
    changed = {c["category"]: c["skus"] for c in delta["cells"]}
    assert changed == {"dairy": 1, "frozen": 1}


def test_missing_category_keeps_the_known_one() -> None:
    v = LiveView()
    v.apply_state(state("A", category="dairy"))
    v.apply_state(state("A", version=2, category=None))
    assert v.states["S1:A"]["category"] == "dairy"
    v.apply_state(state("Z", category=None))
    assert v.states["S1:Z"]["category"] == "uncategorised"


def test_alert_lifecycle_open_update_resolved() -> None:
    v = LiveView()
    v.apply_state(state("A"))
    v.apply_alert(alert(minute=0))
    v.apply_alert(alert(status="update", minute=5, severity="high"))
    a = v.alerts["a1"]
    assert a["status"] == "update" and a["severity"] == "high" and a["updates"] == 1
    assert a["opened_ts"] == "2026-11-27T09:00:00Z"  # age counts from the open, not the update
    cell = v.heatmap()[0]
    assert cell["open_alerts"] == 1 and cell["max_severity"] == "high"
    v.apply_alert(alert(status="resolved", minute=9))
    assert "a1" not in v.alerts and v.resolved["a1"]["resolved_by"] == "worker"
    assert v.heatmap()[0]["open_alerts"] == 0
    delta = v.drain()
    assert delta is not None and delta["alerts"][-1]["status"] == "resolved"


def test_resolved_alerts_are_bounded() -> None:
    v = LiveView(keep_resolved=5)
    for i in range(20):
        v.apply_alert(alert(f"a{i}"))
        v.apply_alert(alert(f"a{i}", status="resolved"))
    assert len(v.resolved) == 5 and list(v.resolved) == [f"a{i}" for i in range(15, 20)]


def test_a_resolve_seen_before_its_open_is_kept_for_the_feed() -> None:
    v = LiveView()
    v.apply_alert(alert("late", status="resolved"))
    assert v.resolved["late"]["status"] == "resolved" and not v.alerts


def test_acknowledge_and_resolve_are_ui_state_with_clear_errors() -> None:
    v = LiveView()
    v.apply_alert(alert("a1", minute=3))
    acked = v.acknowledge("a1")
    assert acked["acked"] and acked["acked_ts"] == "2026-11-27T09:03:00Z"
    with pytest.raises(UnknownAlert):
        v.acknowledge("nope")
    resolved = v.resolve("a1")
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "operator"
    with pytest.raises(AlertNotOpen):
        v.resolve("a1")
    with pytest.raises(AlertNotOpen):
        v.acknowledge("a1")
    # The worker still sees the condition: its next update brings the alert back open.
    v.apply_alert(alert("a1", status="update", minute=8))
    assert v.alerts["a1"]["status"] == "update" and "a1" not in v.resolved
    assert "resolved_by" not in v.alerts["a1"] and v.alerts["a1"]["acked"]


def test_observations_keep_the_newest_frame_per_sku() -> None:
    v = LiveView()
    obs = {"ts": "2026-11-27T09:10:00Z", "store_id": "S1", "sku": "A", "camera_id": "c1",
           "frame_event_id": "f2", "fill_ratio": 0.5, "boxes": [{"cls": "gap", "box": [1, 2, 3, 4]}],
           "frame_uri": "S1/c1/f2.jpg"}
    assert v.apply_observation(obs)
    assert not v.apply_observation(obs | {"ts": "2026-11-27T09:05:00Z", "frame_event_id": "f1"})
    assert v.observations["S1:A"]["frame_event_id"] == "f2"


def test_sku_risk_levels() -> None:
    assert sku_risk({"shelf_qty": 0, "backroom_qty": 0}) == 1.0
    assert sku_risk({"shelf_qty": 0, "backroom_qty": 3}) == 0.8
    assert sku_risk({"shelf_qty": 5, "backroom_qty": 3, "hours_to_shelf_out": 1.5}) == 0.6
    assert sku_risk({"shelf_qty": 9, "backroom_qty": 3, "hours_to_stockout": 30}, 48) == 0.4
    assert sku_risk({"shelf_qty": 9, "backroom_qty": 3, "hours_to_stockout": 60}, 48) == 0.0


def test_wire_form_is_rows_under_field_names() -> None:
    v = LiveView()
    v.apply_state(state("A", vision_fill=0.5))
    wire = orjson.loads(orjson.dumps(to_wire(v.snapshot())))
    fields, rows = wire["states"]["f"], wire["states"]["r"]
    assert tuple(fields) == STATE_FIELDS
    back = {f: x for f, x in zip(fields, rows[0], strict=True) if x is not None}
    assert back == v.states["S1:A"]
    assert wire["cells"]["r"][0][:2] == ["S1", "dairy"]


async def test_hub_sends_a_snapshot_then_deltas_and_resyncs_slow_clients() -> None:
    v = LiveView()
    v.apply_state(state("A"))
    hub = Hub(v, flush_s=0.01, max_queue=3)
    fast, slow = hub.connect(), hub.connect()
    assert orjson.loads(fast.queue.get_nowait())["type"] == "snapshot"
    assert hub.flush() == 2  # pending state from before the connect: harmless, same values
    fast.queue.get_nowait()
    for i in range(2, 6):
        v.apply_state(state("A", version=i))
        hub.flush()
        fast.queue.get_nowait()  # the fast client keeps up
    # The slow one never read: its backlog was replaced by one snapshot, counted as dropped.
    assert slow.resyncs >= 1 and slow.dropped >= 3 and hub.stats.dropped == slow.dropped
    msgs = [orjson.loads(slow.queue.get_nowait()) for _ in range(slow.queue.qsize())]
    snaps = [m for m in msgs if m["type"] == "snapshot"]
    assert snaps and msgs[-1]["states"]["r"][0][STATE_FIELDS.index("version")] == 5
    # After the snapshot the deltas continue its sequence, so the page sees no gap.
    after = msgs[msgs.index(snaps[-1]):]
    assert [m["seq"] for m in after] == list(range(after[0]["seq"], after[0]["seq"] + len(after)))
    hub.start()
    v.apply_state(state("A", version=9))
    msg = orjson.loads(await asyncio.wait_for(fast.queue.get(), timeout=2))
    assert msg["type"] == "delta" and msg["states"]["r"][0][STATE_FIELDS.index("version")] == 9
    await hub.stop()
    assert await asyncio.wait_for(fast.queue.get(), timeout=1) == ""  # close sentinel
