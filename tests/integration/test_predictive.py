"""STOCKOUT_RISK before a shelf-out, on the real broker with `backroom worker`.

    pytest tests/integration/test_predictive.py

A SKU sells steadily, two units an hour, from a shelf of 100 and an empty backroom. Once the
forecast sees the stock running out within the 48-hour horizon, STOCKOUT_RISK opens while the
shelf still holds stock, and inventory.state carries the projection and the reorder levels.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backroom.settings import Settings
from streams.topics import ensure_topics
from tests.factories import catalog_entry, key, sale, scan
from tests.helpers import consume_until, produce

pytestmark = pytest.mark.integration


def test_stockout_risk_opens_before_the_shelf_is_empty(kafka_settings: Settings, worker_factory: Any) -> None:
    asyncio.run(ensure_topics(kafka_settings))
    worker = worker_factory(kafka_settings)
    events: list[tuple[str, str | None, Any]] = [
        ("catalog.skus", "*:P", catalog_entry("P", shelf_capacity=100, min_shelf_qty=0,
                                              lead_time_hours=24.0, case_pack=12)),
    ]
    for ev in [scan("count", 0, sku="P"), scan("count", 100, sku="P", location="shelf")]:
        events.append(("backroom.scans", key(ev), ev))
    asyncio.run(produce(kafka_settings, events))
    # The counts first: a count that arrives after later sales would overwrite them (the
    # ledger keeps deltas stamped before a count, not ones applied before it arrived).
    asyncio.run(consume_until(kafka_settings, "inventory.state",
                              lambda sts: any(s["shelf_qty"] == 100 for s in sts), timeout_s=60))
    sales = [sale(sku="P", qty=1, minutes=m + 1) for m in range(0, 30 * 60, 30)]  # 2 an hour, 30 h
    asyncio.run(produce(kafka_settings, [("pos.sales", key(ev), ev) for ev in sales]))

    def opened(alerts: list[dict[str, Any]]) -> bool:
        return any(a["sku"] == "P" and a["type"] == "STOCKOUT_RISK" and a["status"] == "open" for a in alerts)

    alerts = asyncio.run(consume_until(kafka_settings, "alerts", opened, timeout_s=60))
    risk = next((a for a in alerts if a["sku"] == "P" and a["type"] == "STOCKOUT_RISK"), None)
    assert risk is not None, worker.log()
    ev = risk["evidence"]
    assert ev["shelf_qty"] > 0 and 0 < ev["hours_to_stockout"] <= 48  # ahead of the shelf-out

    def last_state(states: list[dict[str, Any]]) -> bool:
        return any(s["sku"] == "P" and s["shelf_qty"] == 40 for s in states)

    states = asyncio.run(consume_until(kafka_settings, "inventory.state", last_state, timeout_s=60))
    st = max((s for s in states if s["sku"] == "P"), key=lambda s: s["version"])
    assert st["shelf_qty"] == 40, worker.log()
    assert st["demand_per_hour"] == pytest.approx(2.0, abs=0.6)
    assert st["hours_to_stockout"] == pytest.approx(20, abs=8)
    assert st["reorder_point"] > st["lead_time_demand"] > 0 and st["case_pack"] == 12
    assert worker.alive, worker.log()
