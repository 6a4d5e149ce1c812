"""The Faust app factory: `backroom worker` runs `create_app(settings)`.

    app = create_app(settings)     # the worker's topology; nothing talks to the broker yet
    app.main()                     # what `backroom worker` does

The topology below is all there is to the app: topics, tables, one `Worker`
(streams/worker.py: the processors, tables and checkpoint) and one agent per source, each a
method of the worker. With `bulk_ingest` (the default) the consumer hands sales and scans to the
worker's bulk path instead, and those two agents only keep the topics subscribed (and serve
`test_context`). Engine internals: streams/faust_internals.py; the durability protocol:
streams/checkpoint.py; tables: streams/tables.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from backroom.settings import Settings
from streams.faust_internals import TRANSPORT_SCHEME, BackroomApp
from streams.feedback import add_feedback_agent
from streams.metrics import Metrics, instrument
from streams.partitioner import KeyPartitioner
from streams.runtime import settle_heap
from streams.tables import make_tables
from streams.transfers import add_transfer_agents
from streams.worker import Topics, Worker, fetched_messages, raw_messages

__all__ = ["Topics", "create_app", "fetched_messages", "make_topics", "raw_messages", "worker_app"]


def _topic(app: faust.App, settings: Settings, name: str) -> faust.TopicT:
    return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, partitions=settings.partitions)


def make_topics(app: faust.App, settings: Settings) -> Topics:
    return Topics(
        sales=_topic(app, settings, "pos.sales"),
        scans=_topic(app, settings, "backroom.scans"),
        catalog=_topic(app, settings, "catalog.skus"),
        state=_topic(app, settings, "inventory.state"),
        observations=_topic(app, settings, "shelf.observations"),
        alerts=_topic(app, settings, "alerts"),
        dead_letter=_topic(app, settings, "dead-letter"),
        frames=_topic(app, settings, "camera.frames"),
        planograms=_topic(app, settings, "catalog.planograms"),
    )


def worker_app(app_id: str, settings: Settings, datadir: Path) -> BackroomApp:
    """An app with the worker's Faust and consumer configuration, no agents or tables yet
    (`create_app` adds them; `bench/noop.py` builds its bulk baseline on the same)."""
    app = BackroomApp(
        app_id,
        # The scheme picks streams/faust_internals.py's transport from Faust's registry.
        broker=[f"{TRANSPORT_SCHEME}://{b.strip()}" for b in settings.bootstrap.split(",")],
        store=settings.store,
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        # A killed worker holds its partitions until its session times out: keep that short.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 4,
        # Changelog and state records are many and small: batch them into few produce requests.
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=4 * 1024 * 1024,
        producer_acks=-1,
        producer_partitioner=KeyPartitioner(),
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        table_cleanup_interval=300.0,
    )
    app.fetch_min_bytes = settings.fetch_min_bytes
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    # One coalesced batch writes one changelog record per touched key: let that many wait in the
    # producer's buffer before Faust pauses the conductor (its default is 100).
    app.producer_buffer_messages = 4 * settings.batch_size
    return app


async def _settle_heap(sender: Any, *args: Any, **kwargs: Any) -> None:
    """Recovered tables are long-lived: keep full collections from walking them
    (streams/runtime.py)."""
    settle_heap()


def create_app(settings: Settings) -> faust.App:
    """Build the worker app; nothing talks to the broker until the worker starts."""
    datadir = (settings.data_dir / "worker").resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    app = worker_app(settings.app_id, settings, datadir)
    topics, tables, metrics = make_topics(app, settings), make_tables(app, settings), Metrics()
    worker = Worker(app, settings, topics, tables, metrics)

    app.on_rebalance_complete.connect(_settle_heap)  # type: ignore[arg-type]
    # Prometheus series (streams/metrics.py); the /metrics server starts with the worker.
    instrument(app, metrics, settings.metrics_host, settings.metrics_port,
               settings.metrics_interval_s, tables.alert_books)
    app.timer(10.0, name="worker-tick")(worker.tick)
    if settings.bulk_ingest:
        app.bulk_handlers[topics.sales.get_topic_name()] = worker.bulk_inventory("pos.sales")
        app.bulk_handlers[topics.scans.get_topic_name()] = worker.bulk_inventory("backroom.scans")

    agent = app.agent
    agents = {
        "sales": agent(topics.sales, name="sales")(worker.sales),
        "scans": agent(topics.scans, name="scans")(worker.scans),
        "observation_alerts": agent(topics.observations, name="observation-alerts")(worker.observation_alerts),
        "shelf_fill": agent(topics.observations, name="shelf-fill")(worker.shelf_fill),
        "planograms": agent(topics.planograms, name="planograms")(worker.planograms),
        "vision": agent(topics.frames, name="vision")(worker.vision),
        "catalog": agent(topics.catalog, name="catalog")(worker.catalog),
        # False-alarm feedback tunes the alert books this worker owns (docs/floor.md).
        "feedback": add_feedback_agent(app, settings, _topic(app, settings, "alerts.feedback"),
                                       topics.dead_letter, tables.alert_books, worker.inventory,
                                       worker.books_lock),
    }
    # For tests and tools: what the app is made of.
    app.backroom_worker = worker  # type: ignore[attr-defined]
    app.backroom_topics = topics  # type: ignore[attr-defined]
    app.backroom_tables = tables.by_name()  # type: ignore[attr-defined]
    app.backroom_stats = worker.stats  # type: ignore[attr-defined]
    app.backroom_metrics = metrics  # type: ignore[attr-defined]
    app.backroom_agents = agents  # type: ignore[attr-defined]
    if settings.transfers:  # TRANSFER across partitions: inventory.by-sku (docs/floor.md)
        agents.update(add_transfer_agents(app, settings, topics, tables.alert_books))
    return app
