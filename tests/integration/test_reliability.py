"""Crash safety and scale-out on the real broker.

    make test-reliability        # or: pytest -m reliability tests/integration/test_reliability.py

- kill -9 the worker at random points (5 times), restarting it each time: the final states and
  open alerts equal those of an uninterrupted, in-process run over the same events — nothing
  lost, nothing counted twice;
- two workers with the same app id split the partitions; when one stops the other takes over,
  and the state is still exact.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from backroom.processing import AlertProcessor, InventoryProcessor, RawMessage
from backroom.settings import Settings
from streams.topics import ensure_topics
from tests.factories import key, sale, scan
from tests.helpers import WorkerProcess, consume_until, produce

# In `make test`; `make test-reliability` runs them alone (e.g. to repeat them).
pytestmark = [pytest.mark.integration, pytest.mark.reliability]

STORES, SKUS = ("S1", "S2"), tuple(f"K{i}" for i in range(10))


def workload(seed: int, per_key: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Events within one event-time hour (no demand hour closes, so alerts depend only on the
    quantities); every key ends far from any threshold: refilled, or sold out."""
    rng = random.Random(seed)
    out: list[tuple[str, str, dict[str, Any]]] = []
    for store in STORES:
        for i, sku in enumerate(SKUS):
            evs = [scan("receive", 200, store, sku, minutes=0), scan("move_to_shelf", 20, store, sku, minutes=1)]
            for n in range(per_key):
                m = 2 + 45 * n / per_key
                r = rng.random()
                if r < 0.7:
                    evs.append(sale(store, sku, qty=rng.randint(1, 2), minutes=m))
                elif r < 0.9:
                    evs.append(scan("move_to_shelf", rng.randint(1, 5), store, sku, minutes=m))
                else:
                    evs.append(scan("adjust", -1, store, sku, minutes=m))
            if i % 2:
                evs += [scan("count", 0, store, sku, location="shelf", minutes=50),
                        scan("count", 0, store, sku, minutes=50)]
            else:
                evs += [scan("count", 24, store, sku, location="shelf", minutes=50),
                        scan("count", 150, store, sku, minutes=50)]
            out += [("backroom.scans" if "kind" in e else "pos.sales", key(e), e) for e in evs]
    rng.shuffle(out)  # interleave keys; per-key order within a topic still follows event time
    out.sort(key=lambda t: (t[1], t[2]["ts"]))
    rng.shuffle(out)
    return sorted(out, key=lambda t: t[2]["ts"])


async def produce_paced(settings: Settings, events: list[tuple[str, str, Any]], per_s: float) -> None:
    for i in range(0, len(events), 25):
        await produce(settings, events[i : i + 25])
        await asyncio.sleep(25 / per_s)


def reference(settings: Settings, events: list[tuple[str, str, dict[str, Any]]]) -> tuple[dict, set]:
    """The same processors, in-process, uninterrupted."""
    inv, alerts = InventoryProcessor(settings), AlertProcessor(settings)
    table: dict[str, Any] = {}
    books: dict[str, Any] = {}
    offsets: Counter[str] = Counter()
    opened: dict[str, tuple[str, str, str]] = {}
    for topic, k, ev in events:
        msg = RawMessage(topic, 0, offsets[topic], k.encode(), orjson.dumps(ev))
        offsets[topic] += 1
        res = inv.process([msg], table.get, lambda _k: None)
        table.update(res.states)
        for st in res.published:
            ares = alerts.process([RawMessage("inventory.state", 0, 0, k.encode(), st.to_json())], books.get)
            books.update(ares.books)
            for a in ares.alerts:
                if a.status == "resolved":
                    opened.pop(a.alert_id, None)
                else:
                    opened[a.alert_id] = (a.store_id, a.sku, a.type)
    finals = {k: (max(0, v["shelf_qty"]), max(0, v["backroom_qty"]), v["version"]) for k, v in table.items()}
    return finals, {o for o in opened.values() if o[2] in QUANTITY_RULES}


def final_states(settings: Settings, expected: dict[str, tuple[int, int, int]]) -> dict[str, tuple[int, int, int]]:
    def done(states: list[dict[str, Any]]) -> bool:
        latest: dict[str, int] = {}
        for s in states:
            k = f"{s['store_id']}:{s['sku']}"
            latest[k] = max(latest.get(k, 0), s["version"])
        return all(latest.get(k) == v[2] for k, v in expected.items())

    states = asyncio.run(consume_until(settings, "inventory.state", done, timeout_s=180))
    out: dict[str, tuple[int, int, int]] = {}
    for s in states:
        k = f"{s['store_id']}:{s['sku']}"
        if k not in out or s["version"] >= out[k][2]:
            out[k] = (s["shelf_qty"], s["backroom_qty"], s["version"])
    return out


# Alert types whose final open set depends only on the final quantities. REORDER and
# STOCKOUT_RISK remember orders and forecasts along the way, and a worker coalesces states per
# batch, so their path (not their correctness) differs from a one-event-at-a-time run.
QUANTITY_RULES = {"OUT_OF_STOCK", "RESTOCK_SHELF"}


def open_alerts(settings: Settings, want: int) -> set[tuple[str, str, str]]:
    def fold(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for a in alerts:
            latest[a["alert_id"]] = a
        return {i: a for i, a in latest.items() if a["status"] != "resolved" and a["type"] in QUANTITY_RULES}

    alerts = asyncio.run(consume_until(settings, "alerts", lambda al: len(fold(al)) == want, timeout_s=60))
    return {(a["store_id"], a["sku"], a["type"]) for a in fold(alerts).values()}


async def group_members(settings: Settings) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        for _ in range(60):
            response = (await admin.describe_consumer_groups([settings.app_id]))[0]
            # groups: (error_code, group, state, protocol_type, protocol, members)
            members = response.groups[0][5] if response.groups else []
            if len(members) >= 2:
                return len(members)
            await asyncio.sleep(0.5)
        return len(members)
    finally:
        await admin.close()


def test_kill_9_five_times_loses_nothing_and_counts_nothing_twice(
    kafka_settings: Settings, worker_factory: Any
) -> None:
    events = workload(seed=11, per_key=150)
    expected, expected_open = reference(kafka_settings, events)
    asyncio.run(ensure_topics(kafka_settings))
    # Events keep arriving while the worker is killed and restarted (~40 s of production).
    producer = threading.Thread(target=lambda: asyncio.run(produce_paced(kafka_settings, events, 75.0)))
    producer.start()
    rng = random.Random(5)
    worker: WorkerProcess = worker_factory(kafka_settings)
    for _ in range(5):
        worker.wait_ready(timeout_s=120)
        time.sleep(rng.uniform(0.5, 4.0))  # mid-stream, wherever it lands
        worker.kill()  # SIGKILL: no flush, no commit, no goodbye
        worker = worker_factory(kafka_settings)
    producer.join()
    got = final_states(kafka_settings, expected)
    assert got == expected
    assert open_alerts(kafka_settings, len(expected_open)) == expected_open
    assert worker.alive, worker.log()


def test_two_workers_share_partitions_and_survive_one_leaving(
    kafka_settings: Settings, worker_factory: Any
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 4})
    events = workload(seed=3, per_key=60)
    expected, _ = reference(settings, events)
    asyncio.run(ensure_topics(settings))
    first: WorkerProcess = worker_factory(settings)
    # Its own data dir, as a second host would have (a RocksDB store locks its files).
    second: WorkerProcess = worker_factory(settings.model_copy(update={"data_dir": settings.data_dir / "second"}))
    first.wait_ready()
    second.wait_ready()
    half = len(events) // 2
    asyncio.run(produce(settings, events[:half]))
    assert asyncio.run(group_members(settings)) == 2
    time.sleep(3)
    # A graceful leave while batches are in flight: the group rebalances the leaver's
    # partitions onto the first worker, whose changelog replay must not undo its own newer
    # writes (streams.tables.VersionedTable).
    second.stop()
    asyncio.run(produce(settings, events[half:]))
    assert final_states(settings, expected) == expected
    assert first.alive, first.log()
    assert "Traceback" not in second.log(), second.log()
