"""A broker crashes in a three-node cluster while producers and two workers run.

    pytest -m reliability tests/integration/test_cluster.py      # ~2 min on 2 cores

Three embedded KRaft nodes (replication 3, min.insync.replicas 2). Store S1's events go
through the Kafka producer the simulator and replay use (acks=all, idempotent), store S2's
through the ingest API's POST /batch; both retry what was not acknowledged, as a client must.
Two workers split the partitions. The node leading the most input partitions is killed with
SIGKILL mid-stream. Every acknowledged event must be counted once: the final states and open
alerts equal an uninterrupted in-process run over the same events.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from backroom.settings import Settings
from streams.topics import ensure_topics
from tests.conftest import free_port
from tests.helpers import WorkerProcess
from tests.integration.test_reliability import final_states, open_alerts, reference, workload

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

Event = tuple[str, str, dict[str, Any]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from broker.embedded import EmbeddedCluster

    ports = [(free_port(), free_port()) for _ in range(3)]
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("cluster"), brokers=3, partitions=4, broker_heap_mb=256,
    )
    nodes = EmbeddedCluster(settings, ports=ports)
    nodes.start(timeout_s=180)
    try:
        yield nodes
    finally:
        nodes.stop()


async def _leader_counts(settings: Settings, topics: list[str]) -> dict[int, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        counts: dict[int, int] = {}
        for t in await admin.describe_topics([settings.topic(n) for n in topics]):
            for p in t["partitions"]:
                counts[p["leader"]] = counts.get(p["leader"], 0) + 1
        return counts
    finally:
        await admin.close()


async def _produce_direct(settings: Settings, events: list[Event], per_s: float, acked: list[str]) -> None:
    """25 events at a time through `make_producer`; a send that fails is sent again."""
    from producers.kafka import make_producer

    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(0, len(events), 25):
            chunk = events[i : i + 25]
            pending = list(chunk)
            while pending:
                futures = [
                    await producer.send(settings.topic(t), key=k.encode(), value=orjson.dumps(ev))
                    for t, k, ev in pending
                ]
                results = await asyncio.gather(*futures, return_exceptions=True)
                ok = [not isinstance(r, Exception) for r in results]
                first_failed = ok.index(False) if False in ok else len(ok)
                acked += [e[2]["event_id"] for e in pending[:first_failed]]
                # Everything from the first failure on goes again, in order; what the broker
                # had taken already is a duplicate the worker drops by event id.
                pending = pending[first_failed:]
                if pending:
                    await asyncio.sleep(0.5)
            await asyncio.sleep(25 / per_s)
    finally:
        await producer.stop()


def _produce_ingest(settings: Settings, events: list[Event], per_s: float, acked: list[str]) -> None:
    """25 events at a time through the ingest API (one topic per request); 503 is retried."""
    from fastapi.testclient import TestClient

    from producers.ingest_api import create_ingest_app

    path = {"pos.sales": "/api/v1/sales/batch", "backroom.scans": "/api/v1/scans/batch"}
    # A loopback Host: without a token the API refuses any other (TestClient's is "testserver").
    with TestClient(create_ingest_app(settings), base_url="http://127.0.0.1:8001") as client:
        for i in range(0, len(events), 25):
            chunk = events[i : i + 25]
            # Consecutive events of one topic in one request, in order.
            runs: list[list[Event]] = []
            for e in chunk:
                if runs and runs[-1][0][0] == e[0]:
                    runs[-1].append(e)
                else:
                    runs.append([e])
            for run in runs:
                body = orjson.dumps([e[2] for e in run])
                while True:
                    r = client.post(path[run[0][0]], content=body, headers={"content-type": "application/json"})
                    if r.status_code == 202:
                        acked += [e[2]["event_id"] for e in run]
                        break
                    assert r.status_code == 503, r.text
                    time.sleep(0.5)
            time.sleep(25 / per_s)


def test_a_broker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(
    cluster: Any, settings_factory: Any, worker_factory: Any, tmp_path: Path
) -> None:
    import uuid

    tag = uuid.uuid4().hex[:8]
    settings: Settings = settings_factory(
        kafka_bootstrap=cluster.bootstrap, replication_factor=3, partitions=4,
        topic_prefix=f"c{tag}.", app_id=f"backroom-c{tag}", batch_within_s=0.01,
    )
    events = workload(seed=17, per_key=100)
    expected, expected_open = reference(settings, events)
    asyncio.run(ensure_topics(settings))
    first: WorkerProcess = worker_factory(settings)
    # Its own data dir, as a second host would have (a RocksDB store locks its files).
    second: WorkerProcess = worker_factory(settings.model_copy(update={"data_dir": settings.data_dir / "second"}))
    first.wait_ready(timeout_s=180)
    second.wait_ready(timeout_s=180)

    direct = [e for e in events if e[2]["store_id"] == "S1"]
    via_api = [e for e in events if e[2]["store_id"] == "S2"]
    acked_direct: list[str] = []
    acked_api: list[str] = []
    threads = [
        threading.Thread(target=lambda: asyncio.run(_produce_direct(settings, direct, 60.0, acked_direct))),
        threading.Thread(target=lambda: _produce_ingest(settings, via_api, 60.0, acked_api)),
    ]
    for t in threads:
        t.start()
    time.sleep(6)  # mid-stream: both producers and both workers busy
    leaders = asyncio.run(_leader_counts(settings, ["pos.sales", "backroom.scans"]))
    victim = max(leaders, key=lambda n: leaders[n])
    cluster.nodes[victim - 1].kill()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)

    # Every event was acknowledged exactly once by its producer...
    assert sorted(acked_direct) == sorted(e[2]["event_id"] for e in direct)
    assert sorted(acked_api) == sorted(e[2]["event_id"] for e in via_api)
    # ...and the two workers, on the two surviving nodes, counted each once.
    assert final_states(settings, expected) == expected
    assert open_alerts(settings, len(expected_open)) == expected_open
    assert first.alive, first.log()
    assert second.alive, second.log()
    assert cluster.running() == [n.node_id for n in cluster.nodes if n.node_id != victim]
