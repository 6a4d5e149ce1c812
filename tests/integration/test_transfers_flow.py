"""TRANSFER from the live worker, on the real broker (`BACKROOM_TRANSFERS=1 backroom worker`).

    pytest tests/integration/test_transfers_flow.py

Two stores 4 h apart (catalog.stores). S1 sells P two an hour from 100 on the shelf and nothing in
the backroom: REORDER opens and its order (72 h lead time) is far off, while the shelf runs out in
about a day. S2 holds 500 and sells one every two hours. The worker re-keys inventory.state by SKU
(inventory.by-sku), plans P across both stores and puts a TRANSFER S2 -> S1 on `alerts`.
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


def test_a_store_about_to_run_out_gets_a_transfer_from_an_overstocked_one(
    kafka_settings: Settings, worker_factory: Any
) -> None:
    settings = kafka_settings.model_copy(update={"transfers": True})
    asyncio.run(ensure_topics(settings))
    worker = worker_factory(settings)
    events: list[tuple[str, str | None, Any]] = [
        ("catalog.skus", "*:P", catalog_entry("P", shelf_capacity=100, min_shelf_qty=0, lead_time_hours=72.0,
                                              case_pack=12, unit_cost=2.0)),
        ("catalog.stores", "S1", {"store_id": "S1", "name": "North", "transfer_hours": {"S2": 4}}),
        ("catalog.stores", "S9", {"store_id": "S1"}),  # key and store disagree: dead-letter
    ]
    counts = [scan("count", 0, sku="P"), scan("count", 100, sku="P", location="shelf"),
              scan("count", 400, store_id="S2", sku="P"), scan("count", 100, store_id="S2", sku="P", location="shelf")]
    events += [("backroom.scans", key(ev), ev) for ev in counts]
    asyncio.run(produce(settings, events))
    asyncio.run(consume_until(settings, "inventory.state",
                              lambda sts: sum(s["shelf_qty"] == 100 for s in sts) >= 2, timeout_s=90))
    sales = [sale(sku="P", minutes=m + 1) for m in range(0, 30 * 60, 30)]  # S1: 2 an hour for 30 h
    sales += [sale(store_id="S2", sku="P", minutes=m + 7) for m in range(0, 30 * 60, 120)]
    sales.sort(key=lambda ev: ev["ts"])
    asyncio.run(produce(settings, [("pos.sales", key(ev), ev) for ev in sales]))

    # The order a REORDER puts on S1's books joins S1's position with its next state (the state
    # that raised the REORDER was published before the order was booked).
    def reorder(alerts: list[dict[str, Any]]) -> bool:
        return any(a["type"] == "REORDER" and a["store_id"] == "S1" and a["status"] == "open" for a in alerts)

    asyncio.run(consume_until(settings, "alerts", reorder, timeout_s=90))
    later = [sale(sku="P", minutes=30 * 60 + m) for m in (10, 40)]
    asyncio.run(produce(settings, [("pos.sales", key(ev), ev) for ev in later]))

    def transfer(alerts: list[dict[str, Any]]) -> bool:
        return any(a["type"] == "TRANSFER" and a["status"] == "open" for a in alerts)

    alerts = asyncio.run(consume_until(settings, "alerts", transfer, timeout_s=120))
    opened = [a for a in alerts if a["type"] == "TRANSFER" and a["status"] == "open"]
    assert opened, (sorted({(a["store_id"], a["type"]) for a in alerts}), worker.log())
    t = opened[0]
    ev = t["evidence"]
    assert (t["store_id"], t["sku"], ev["from_store"], ev["to_store"]) == ("S1", "P", "S2", "S1")
    assert ev["qty"] > 0 and ev["transfer_hours"] == 4 and ev["hours_saved"] > 0
    assert ev["hours_to_stockout"] < ev["supplier_in_hours"] <= 72
    assert ev["expected_lost"]["units"] > 0 and ev["expected_lost"]["price"] == 2.0
    dead = asyncio.run(consume_until(settings, "dead-letter", lambda d: len(d) >= 1, timeout_s=30))
    assert any(d["source_topic"] == "catalog.stores" and "store_id" in d["error"] for d in dead), dead
    assert worker.alive, worker.log()
