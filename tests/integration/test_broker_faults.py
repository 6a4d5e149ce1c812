"""Broker faults: stop and restart Kafka while events are produced and the worker runs.

    pytest tests/integration/test_broker_faults.py

Uses its own broker (the session broker must stay up for the other tests). Every event whose
send was acknowledged (acks=all) is in the final state exactly once; sends that failed outright
may or may not have landed, never twice (idempotent producer + event_id).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from backroom.settings import Settings
from broker.embedded import EmbeddedBroker
from producers.kafka import make_producer
from streams.topics import ensure_topics
from tests.conftest import free_port
from tests.factories import key, sale, scan
from tests.helpers import consume_until

pytestmark = pytest.mark.integration


async def produce_through_outage(settings: Settings, events: list[dict[str, Any]], per_s: float,
                                 acked: Counter[str], failed: Counter[str]) -> None:
    producer = make_producer(settings, request_timeout_ms=60_000, retry_backoff_ms=500)
    await producer.start()
    try:
        pending = []
        for ev in events:
            topic = settings.topic("backroom.scans" if "kind" in ev else "pos.sales")
            fut = await producer.send(topic, key=key(ev).encode(), value=orjson.dumps(ev))
            pending.append((key(ev), fut))
            await asyncio.sleep(1 / per_s)
        for k, fut in pending:
            try:
                await fut
                acked[k] += 1
            except Exception:
                failed[k] += 1
    finally:
        await producer.stop()


def test_broker_restart_while_producing_loses_no_acknowledged_event(
    tmp_path: Path, settings_factory: Any, worker_factory: Any
) -> None:
    port = free_port()
    settings: Settings = settings_factory(
        broker_port=port, broker_controller_port=free_port(), data_dir=tmp_path / "faulty",
        kafka_bootstrap=f"127.0.0.1:{port}", app_id="faulty", batch_within_s=0.01,
    )
    broker = EmbeddedBroker(settings)
    broker.start(timeout_s=120)
    try:
        asyncio.run(ensure_topics(settings))
        worker = worker_factory(settings)
        worker.wait_ready()
        events: list[dict[str, Any]] = []
        for sku in ("A", "B", "C", "D"):
            events.append(scan("receive", 5000, "F1", sku))
        events += [sale("F1", "ABCD"[i % 4], minutes=1 + i / 100) for i in range(1200)]
        acked: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        producing = threading.Thread(
            target=lambda: asyncio.run(produce_through_outage(settings, events, 60.0, acked, failed))
        )
        producing.start()
        time.sleep(6)
        broker.stop()  # a clean broker shutdown mid-stream
        time.sleep(3)
        broker.start(timeout_s=120)  # same data dir: the log and committed offsets survive
        producing.join(timeout=180)
        assert not producing.is_alive()
        sent = Counter(key(ev) for ev in events)

        def done(states: list[dict[str, Any]]) -> bool:
            latest: dict[str, int] = {}
            for s in states:
                k = f"{s['store_id']}:{s['sku']}"
                latest[k] = max(latest.get(k, 0), s["version"])
            return all(latest.get(k, 0) >= n for k, n in acked.items())

        states = asyncio.run(consume_until(settings, "inventory.state", done, timeout_s=120))
        final: dict[str, dict[str, Any]] = {}
        for s in states:
            k = f"{s['store_id']}:{s['sku']}"
            if k not in final or s["version"] > final[k]["version"]:
                final[k] = s
        for k, n in sent.items():
            assert acked[k] <= final[k]["version"] <= n, (k, acked[k], failed[k], final[k])
        assert sum(acked.values()) > 0.9 * len(events)
        assert worker.alive, worker.log()
    finally:
        broker.stop()
