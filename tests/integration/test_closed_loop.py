"""`backroom simulate --staff alert-driven` over the real broker: staff act on the worker's alerts.

    pytest tests/integration/test_closed_loop.py

The simulator runs a day of one small store at 3,600× against `backroom worker`. With
alert-driven staff there are no scheduled rounds: every `move_to_shelf` scan the simulator sends
must follow a RESTOCK_SHELF alert (or PHANTOM_STOCK) for that SKU, opened on the `alerts` topic
at least the staff's reaction time earlier in event time, and the loop must make some moves.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from backroom.settings import Settings
from producers.simulator import run_simulator
from streams.topics import ensure_topics
from tests.helpers import consume_until

pytestmark = pytest.mark.integration

REACTION = timedelta(minutes=45)  # AlertDrivenStaff's default in `backroom simulate`


def test_alert_driven_staff_move_stock_only_after_the_workers_alerts(
    kafka_settings: Settings, worker_factory: Any
) -> None:
    asyncio.run(ensure_topics(kafka_settings))
    worker = worker_factory(kafka_settings)
    sent = asyncio.run(run_simulator(
        kafka_settings, stores=1, skus=4, days=1.0, speed=3600.0, seed=11,
        start="2026-11-23T06:00:00+00:00", staff="alert-driven",
    ))
    assert sent > 50

    # Everything is on the topics once the simulator returns (it flushes); read all of it.
    scans = asyncio.run(consume_until(kafka_settings, "backroom.scans", lambda _: False, timeout_s=6))
    moves = [s for s in scans if s.get("kind") == "move_to_shelf"]
    assert moves, worker.log()
    alerts = asyncio.run(consume_until(kafka_settings, "alerts", lambda _: False, timeout_s=6))
    opened: dict[str, list[datetime]] = {}
    for a in alerts:
        if a["type"] in ("RESTOCK_SHELF", "PHANTOM_STOCK") and a["status"] == "open":
            opened.setdefault(f"{a['store_id']}:{a['sku']}", []).append(datetime.fromisoformat(a["ts"]))
    for m in moves:
        ts = datetime.fromisoformat(m["ts"].replace("Z", "+00:00"))
        before = [t for t in opened.get(f"{m['store_id']}:{m['sku']}", []) if t + REACTION <= ts]
        assert before, f"a move with no alert {REACTION} before it: {m}"
    assert worker.alive, worker.log()
