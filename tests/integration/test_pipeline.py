"""Events in, state and alerts out, on the real embedded broker with `backroom worker`.

    pytest tests/integration/test_pipeline.py
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from backroom.settings import Settings
from streams.topics import ensure_topics
from tests.factories import catalog_entry, key, sale, scan
from tests.helpers import WorkerProcess, consume_until, produce

pytestmark = pytest.mark.integration


def scenario() -> list[tuple[str, str, dict[str, Any]]]:
    """A SKU restocked, sold down below its minimum; a second SKU that runs out entirely."""
    events: list[tuple[str, str, dict[str, Any]]] = [
        ("catalog.skus", "*:A", catalog_entry("A", shelf_capacity=20, min_shelf_qty=5)),
    ]
    for ev in [scan("receive", 30, minutes=0), scan("move_to_shelf", 20, minutes=1)]:
        events.append(("backroom.scans", key(ev), ev))
    for m in range(16):
        ev = sale(qty=1, minutes=10 + m)
        events.append(("pos.sales", key(ev), ev))
    for ev in [scan("count", 2, sku="B", location="shelf", minutes=0), sale(sku="B", qty=2, minutes=5)]:
        events.append(("backroom.scans" if "kind" in ev else "pos.sales", key(ev), ev))
    return events


def latest_state(states: list[dict[str, Any]], sku: str) -> dict[str, Any] | None:
    mine = [s for s in states if s["sku"] == sku]
    return max(mine, key=lambda s: s["version"]) if mine else None


def wait_state(settings: Settings, sku: str, **expected: Any) -> dict[str, Any]:
    def done(states: list[dict[str, Any]]) -> bool:
        st = latest_state(states, sku)
        return st is not None and all(st.get(k) == v for k, v in expected.items())

    states = asyncio.run(consume_until(settings, "inventory.state", done, timeout_s=60))
    st = latest_state(states, sku)
    assert st is not None and all(st.get(k) == v for k, v in expected.items()), st
    return st


def wait_alerts(settings: Settings, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    return asyncio.run(consume_until(settings, "alerts", done, timeout_s=60))


def has(alerts: list[dict[str, Any]], sku: str, type_: str, status: str) -> bool:
    return any(a["sku"] == sku and a["type"] == type_ and a["status"] == status for a in alerts)


@pytest.mark.parametrize("bulk_ingest", [True, False], ids=["bulk", "agents"])
def test_events_in_state_and_alerts_out(kafka_settings: Settings, worker_factory: Any, bulk_ingest: bool) -> None:
    # Both ways sales and scans reach the processor: the consumer's bulk hand-off (the
    # default) and Faust's per-message agents (BACKROOM_BULK_INGEST=false).
    kafka_settings = kafka_settings.model_copy(update={"bulk_ingest": bulk_ingest})
    asyncio.run(ensure_topics(kafka_settings))
    worker: WorkerProcess = worker_factory(kafka_settings)
    asyncio.run(produce(kafka_settings, scenario()))

    a = wait_state(kafka_settings, "A", shelf_qty=4, backroom_qty=10, shelf_capacity=20)
    assert a["min_shelf_qty"] == 5 and "catalog_missing" not in a
    b = wait_state(kafka_settings, "B", shelf_qty=0, backroom_qty=0)
    assert b["catalog_missing"] is True  # no catalog entry: defaults, flagged

    alerts = wait_alerts(kafka_settings, lambda al: has(al, "A", "RESTOCK_SHELF", "open")
                         and has(al, "B", "OUT_OF_STOCK", "open"))
    assert has(alerts, "A", "RESTOCK_SHELF", "open"), alerts
    assert has(alerts, "B", "OUT_OF_STOCK", "open"), alerts
    restock = next(a for a in alerts if a["type"] == "RESTOCK_SHELF")
    # Sales and scans travel on two topics, so which state first crossed the minimum depends
    # on arrival order; the action must always match the evidence it was computed from.
    ev = restock["evidence"]
    assert ev["shelf_qty"] <= 5
    assert f"move {min(ev['backroom_qty'], ev['shelf_capacity'] - ev['shelf_qty'])} units" in restock["action"]

    # Restocking ends the condition: the same alert id is resolved.
    ev = scan("move_to_shelf", 10, minutes=40)
    asyncio.run(produce(kafka_settings, [("backroom.scans", key(ev), ev)]))
    alerts = wait_alerts(kafka_settings, lambda al: has(al, "A", "RESTOCK_SHELF", "resolved"))
    resolved = next(a for a in alerts if a["type"] == "RESTOCK_SHELF" and a["status"] == "resolved")
    assert resolved["alert_id"] == restock["alert_id"]
    assert worker.alive, worker.log()


def test_a_repeated_event_id_changes_nothing(kafka_settings: Settings, worker_factory: Any) -> None:
    asyncio.run(ensure_topics(kafka_settings))
    worker_factory(kafka_settings)
    receive = scan("receive", 12, sku="C")
    asyncio.run(produce(kafka_settings, [("backroom.scans", key(receive), receive)] * 3))
    marker = scan("receive", 1, sku="C", minutes=5)  # processed after the repeats
    asyncio.run(produce(kafka_settings, [("backroom.scans", key(marker), marker)]))
    st = wait_state(kafka_settings, "C", last_event_id=marker["event_id"])
    assert st["backroom_qty"] == 13 and st["version"] == 2


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (scripts/setup.sh --test)")
def test_kcat_as_an_independent_client(kafka_settings: Settings, worker_factory: Any) -> None:
    """kcat produces the scenario as JSON lines and reads the alerts back."""
    asyncio.run(ensure_topics(kafka_settings))
    worker_factory(kafka_settings)
    by_topic: dict[str, list[str]] = {}
    for topic, k, value in scenario():
        by_topic.setdefault(topic, []).append(f"{k}|{orjson.dumps(value).decode()}")
    for topic, lines in by_topic.items():
        # murmur2 like every other client, so a key lands on the same partition (DESIGN §7).
        subprocess.run(
            ["kcat", "-P", "-b", kafka_settings.bootstrap, "-t", kafka_settings.topic(topic), "-K", "|",
             "-X", "partitioner=murmur2_random"],
            input="\n".join(lines) + "\n", text=True, check=True, timeout=30,
        )
    wait_alerts(kafka_settings, lambda al: has(al, "A", "RESTOCK_SHELF", "open"))
    out = subprocess.run(
        ["kcat", "-C", "-b", kafka_settings.bootstrap, "-t", kafka_settings.topic("alerts"), "-o",
         "beginning", "-e", "-q", "-f", "%k\t%s\n"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    alerts = [orjson.loads(line.split("\t", 1)[1]) for line in out.splitlines() if "\t" in line]
    assert has(alerts, "A", "RESTOCK_SHELF", "open") and has(alerts, "B", "OUT_OF_STOCK", "open")
    assert all(line.split("\t")[0] in ("S1:A", "S1:B") for line in out.splitlines() if line)


async def partitions_by_key(settings: Settings, topic: str, n: int) -> dict[str, set[int]]:
    """Partitions each key's records sit in, for the first n records of a full topic name."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    found: dict[str, set[int]] = {}
    try:
        seen = 0
        while seen < n:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), timeout=30)
            for tp, recs in batch.items():
                for r in recs:
                    found.setdefault(r.key.decode(), set()).add(tp.partition)
                    seen += 1
    finally:
        await consumer.stop()
    return found


def test_changelog_records_sit_in_their_source_partition(kafka_settings: Settings, worker_factory: Any) -> None:
    # The worker that owns a source partition recovers the same-numbered changelog partition;
    # a key's state written anywhere else is lost to it after a restart or a rebalance.
    asyncio.run(ensure_topics(kafka_settings))
    worker_factory(kafka_settings)
    sales = [sale(sku=f"K{i}") for i in range(24)]
    asyncio.run(produce(kafka_settings, [("pos.sales", key(ev), ev) for ev in sales]))
    wait_state(kafka_settings, "K23", last_event_id=sales[-1]["event_id"])
    for i in range(23):
        wait_state(kafka_settings, f"K{i}", last_event_id=sales[i]["event_id"])
    source = asyncio.run(partitions_by_key(kafka_settings, kafka_settings.topic("pos.sales"), 24))
    changelog = asyncio.run(partitions_by_key(kafka_settings, f"{kafka_settings.app_id}-inventory-changelog", 24))
    assert set(changelog) == set(source), (changelog, source)  # raw keys, as in the source topic
    assert changelog == source
