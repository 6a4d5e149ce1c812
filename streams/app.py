"""The Faust app factory: `backroom worker` runs `create_app(settings)`.

Agents stay thin: collect a batch of raw messages, call a plain processor from
`backroom.processing`, write the coalesced table values, send what it returns. State lives in
changelog-backed tables keyed `"{store_id}:{sku}"`; `use_partitioner=True` puts each key's
changelog record on the same partition number as its source events (murmur2 on the same key),
so a restarted or rebalanced worker recovers exactly the keys it owns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from faust.stores.memory import Store as MemoryStore
from faust.transport.producer import ProducerBuffer
from faust.types import EventT

from backroom.budget import order_by_cost
from backroom.processing import (
    AlertProcessor,
    AlertResult,
    InventoryProcessor,
    InventoryResult,
    RawMessage,
    dead_letter,
)
from backroom.records import CatalogSku, DeadLetter, InvalidEvent, Planogram, Record, decode
from backroom.settings import Settings
from streams.batching import cadenced_batches
from streams.feedback import add_feedback_agent
from streams.metrics import Metrics, instrument
from streams.runtime import release_free_memory, settle_heap
from streams.transfers import add_transfer_agents
from streams.transport import BackroomApp, BulkHandler, KeyPartitioner, StallWatch
from streams.vision import VisionRunner

log = logging.getLogger("backroom.worker")


@dataclass
class Topics:
    """Every topic the worker touches, by contract name."""

    sales: faust.TopicT
    scans: faust.TopicT
    catalog: faust.TopicT
    state: faust.TopicT
    observations: faust.TopicT
    alerts: faust.TopicT
    dead_letter: faust.TopicT
    frames: faust.TopicT
    planograms: faust.TopicT


def _topic(app: faust.App, settings: Settings, name: str, **kw: Any) -> faust.TopicT:
    return app.topic(
        settings.topic(name),
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        **kw,
    )


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


def raw_messages(events: Sequence[EventT], topic: str) -> list[RawMessage]:
    """The batch as plain messages of contract topic `topic` (the agent's own source)."""
    return [
        RawMessage(topic, ev.message.partition, ev.message.offset, ev.message.key, ev.message.value)
        for ev in events
    ]


def fetched_messages(topic: str, records: Mapping[Any, Sequence[Any]]) -> list[RawMessage]:
    """A fetch's records by partition (what a `BulkHandler` gets) as plain messages of contract
    topic `topic`, in partition then offset order."""
    return [RawMessage(topic, tp.partition, r.offset, r.key, r.value)
            for tp, recs in records.items() for r in recs]  # fmt: skip


async def send_records(topic: faust.TopicT, records: Sequence[Record], key_of: Any = None) -> None:
    """Straight to the producer, partitioned by key like `Topic.send`: Faust's send path (a
    FutureMessage, callbacks, serializer look-ups per record) cost more than building the
    record, and nothing here uses what it adds. `durable()` flushes this producer too."""
    name, send = topic.get_topic_name(), topic.app.producer.send
    for rec in records:
        key = key_of(rec) if key_of else f"{rec.store_id}:{rec.sku}"  # type: ignore[attr-defined]
        await send(name, key.encode(), rec.to_json(), partition=None, timestamp=None, headers=None)


async def send_dead(topic: faust.TopicT, dead: Sequence[DeadLetter]) -> None:
    for d in dead:
        log.warning("dead-letter %s[%s]@%s: %s", d.source_topic, d.partition, d.offset, d.error)
        await topic.send(key=d.key.encode() if d.key else None, value=d.to_json())


async def write_values(table: faust.Table, values: Mapping[str, bytes]) -> None:
    """Set keys of a table kept as raw bytes (raw keys, `use_partitioner`), with their changelog
    records sent straight to the producer, as `send_records` does: Faust's per-key path (a
    FutureMessage, its buffer, a callback) cost as much as the inventory logic for a key. The
    records are the ones Faust would send, on the same partitions. A store that keeps its own
    changelog offsets (rocksdb, from Faust's callback) goes through Faust."""
    if not isinstance(table.data, MemoryStore):
        for key, value in values.items():
            table[key] = value
        return
    data, send = table.data.data, table.app.producer.send  # the store's own dict (see `reader`)
    name = table.changelog_topic.get_topic_name()
    # All values first, with no await in between: another agent's read-modify-write of the same
    # keys must see all of this batch or none of it (a record sent out of order between two
    # writers is settled by the version on recovery, see VersionedTable).
    for key, value in values.items():
        data[key] = value
    for key, value in values.items():
        await send(name, key.encode(), value, partition=None, timestamp=None, headers=None)


class KeepingMemoryStore(MemoryStore):
    """Faust's in-memory store, minus its clean-up after each rebalance.

    After every recovery the stock store deletes the keys it replayed for partitions that are
    not active here (standby replicas included), while Faust's recovery keeps reading a standby
    partition from the offset it had reached: promoted to active later, that partition came back
    without every key whose last write was older. The two-worker graceful-leave test
    (`make test-reliability`) caught it as versions behind after the leaver's partitions moved.
    Keeping the values costs memory for partitions this worker gave away, nothing else: a
    partition that comes back is replayed over them, newer versions winning."""

    async def on_recovery_completed(self, active_tps: set[Any], standby_tps: set[Any]) -> None:
        return None


def _as_dict(value: Any) -> dict[str, Any] | None:
    """A table value as a dict: values of tables kept as JSON bytes are parsed."""
    if isinstance(value, bytes | bytearray):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


class VersionedTable(faust.Table):
    """A table whose changelog replay never replaces a newer in-memory value with an older one.

    On a rebalance Faust replays the changelog over the in-memory store of the partitions it
    keeps; a value written by a batch that was in flight then could be replaced by the older
    record before it. Values carry a monotonic version per key, so the newer one wins (a value
    without a version is replaced as usual). The memory store keeps what it holds across
    rebalances (`KeepingMemoryStore`)."""

    def _new_store_by_url(self, url: Any) -> Any:
        if not str(url).startswith("memory:"):
            return super()._new_store_by_url(url)
        return KeepingMemoryStore(
            url, self.app, self, table_name=self.name, key_type=self.key_type,
            key_serializer=self.key_serializer, value_serializer=self.value_serializer,
            value_type=self.value_type, loop=self.loop, options=self.options,
        )  # fmt: skip

    version_field = "version"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, key_type=str, **kwargs)
        # Changelog keys as raw UTF-8, like the source events' keys, so that the partitioner
        # puts a key's changelog record in the partition of its source events: the partition
        # whose owner recovers it. Faust derives JSON for str keys ('"S1:A"' hashes elsewhere),
        # which left a restarted worker of two without the state of about half its keys.
        self.key_serializer = "raw"

    def _to_key(self, k: Any) -> Any:
        # Changelogs written before keys were raw hold JSON strings: read them as the same key.
        if isinstance(k, str) and len(k) >= 2 and k[0] == k[-1] == '"':
            return orjson.loads(k)
        return super()._to_key(k)

    def apply_changelog_batch(self, batch: Any) -> None:
        keep = []
        for event in batch:
            value = event.message.value
            if value is not None:
                current = _as_dict(self.data.get(self._to_key(event.key)))
                if current is not None:
                    incoming = _as_dict(self._to_value(event.value))
                    if incoming is not None and (
                        current.get(self.version_field, -1) > incoming.get(self.version_field, -1)
                    ):
                        continue
            keep.append(event)
        super().apply_changelog_batch(keep)


class VersionedBookTable(VersionedTable):
    version_field = "last_version"


def worker_app(app_id: str, settings: Settings, datadir: Path) -> BackroomApp:
    """An app with the worker's Faust and consumer configuration, no agents or tables yet
    (`create_app` adds them; `streams/noop.py` builds its bulk baseline on the same)."""
    app = BackroomApp(
        app_id,
        broker=[f"kafka://{b.strip()}" for b in settings.bootstrap.split(",")],
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
    return app


def create_app(settings: Settings) -> faust.App:
    """Build the worker app; nothing talks to the broker until the worker starts."""
    datadir = (settings.data_dir / "worker").resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    app = worker_app(settings.app_id, settings, datadir)
    # Faust pauses the whole conductor whenever more than 100 changelog records wait to be
    # produced; one coalesced batch writes one record per touched key, often more than 100.
    ProducerBuffer.max_messages = max(ProducerBuffer.max_messages, 4 * settings.batch_size)
    topics = make_topics(app, settings)
    app.backroom_topics = topics  # type: ignore[attr-defined]

    # --- tables --------------------------------------------------------------------------
    # Keys as raw UTF-8 so the producer partitioner hashes the same bytes as the source events.
    schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    # Inventory values are kept as their JSON bytes (the changelog format, so existing changelogs
    # still recover): one bytes object per key instead of a tree of dicts, lists and floats.
    # At 100k keys after one count each: ~1.4 KB per key as bytes, ~2.5 KB as dicts.
    # (Faust picks a table's serializer from `value_type`, not from its schema.)
    raw_schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="raw")
    inventory = cast(faust.Table, app.tables.add(VersionedTable(
        app, name="inventory", default=None, schema=raw_schema, value_type=bytes, beacon=app.tables.beacon,
        partitions=settings.partitions, use_partitioner=True,
        help="SkuState per store×SKU: quantities, demand buckets, recent event ids",
    )))  # fmt: skip
    alert_books = cast(faust.Table, app.tables.add(VersionedBookTable(
        app, name="alert-books", default=None, schema=schema, beacon=app.tables.beacon,
        partitions=settings.partitions, use_partitioner=True,
        help="open alerts and rule memory per store×SKU",
    )))  # fmt: skip
    # Every worker needs every SKU's master data (a "*:sku" entry applies to all stores).
    catalog = app.GlobalTable(
        "catalog", default=None, schema=schema,
        partitions=1, recovery_buffer_size=1, use_partitioner=True,
        help="catalog.skus, validated",
    )  # fmt: skip
    planograms = cast(faust.Table, app.tables.add(VersionedTable(
        app, name="planograms", default=None, schema=schema, beacon=app.tables.beacon,
        partitions=settings.partitions, use_partitioner=True,
        help="catalog.planograms per store:camera (co-partitioned with camera.frames)",
    )))  # fmt: skip
    app.backroom_tables = {  # type: ignore[attr-defined]
        "inventory": inventory, "alert_books": alert_books, "catalog": catalog, "planograms": planograms,
    }  # fmt: skip

    inventory_processor = InventoryProcessor(settings)
    alert_processor = AlertProcessor(settings)

    # Recovered tables are long-lived: keep full collections from walking them (streams/runtime.py).
    async def on_rebalance_complete(sender: Any, *args: Any, **kwargs: Any) -> None:
        settle_heap()

    app.on_rebalance_complete.connect(cast(Any, on_rebalance_complete))

    # Reads go to the tables' stores: `Table.get` on a key that is not there raises and catches
    # a KeyError inside Faust, and most catalog lookups (store-specific entry first) miss.
    def reader(table: Any) -> Callable[[str], Any]:
        # A memory store's own dict: `Mapping.get` on the store (a try/except around
        # `__getitem__` in Python) cost ~2 % of the worker at 100k keys. Looked up per call,
        # since the store is opened when the worker starts.
        def get(key: str) -> Any:
            data = table.data
            return data.data.get(key) if isinstance(data, MemoryStore) else data.get(key)

        return get

    catalog_get, books_get = reader(catalog), reader(alert_books)
    # The stored bytes: the processor parses them, unless they are the very value it wrote last
    # for that key (`backroom.processing.LiveStates`).
    inventory_get = reader(inventory)

    stats = {"events": 0, "batches": 0, "dead": 0, "duplicates": 0}
    app.backroom_stats = stats  # type: ignore[attr-defined]
    # Prometheus series (streams/metrics.py); the /metrics server starts with the worker.
    metrics = Metrics()
    app.backroom_metrics = metrics  # type: ignore[attr-defined]
    instrument(app, metrics, settings.metrics_host, settings.metrics_port,
               settings.metrics_interval_s, alert_books)  # fmt: skip

    # What each agent's batch is doing, for the log: a batch that hangs shows up here.
    phases: dict[tuple[str, int], tuple[str, float]] = {}  # (source, stream id) -> (phase, since)
    sources = (topics.sales, topics.scans, topics.observations, topics.frames)
    stall_watch = StallWatch({t.get_topic_name() for t in sources})

    @app.timer(10.0)
    async def log_stats() -> None:
        if stats["batches"]:
            live = inventory_processor.live
            log.info("inventory: %(events)d events in %(batches)d batches, %(duplicates)d duplicates, "
                     "%(dead)d dead-lettered; states read live %(hits)d, parsed %(misses)d",
                     {**stats, "hits": live.hits, "misses": live.misses})  # fmt: skip
        now = time.monotonic()
        for (source, _), (phase, since) in list(phases.items()):
            if now - since > 10:
                log.warning("batch from %s has been %s for %.0f s", source, phase, now - since)
        try:
            await stall_watch.check(app.consumer, busy=bool(phases))
        except Exception as exc:  # a watchdog must not take the worker down
            log.warning("stall check failed: %r", exc)
        release_free_memory()  # RSS follows the live heap, not its peak (streams/runtime.py)

    async def inventory_batch(topic: str, messages: Sequence[RawMessage]) -> None:
        stats["events"] += len(messages)
        stats["batches"] += 1
        result = inventory_processor.process(messages, inventory_get, catalog_get)
        stats["dead"] += len(result.dead)
        stats["duplicates"] += result.duplicates
        metrics.observe_batch(topic, "inventory", len(messages), result.dead, result.duplicates)
        await apply_inventory(result)

    def bulk_inventory(topic: str) -> BulkHandler:
        """Sales or scans from one fetch, in batches of `batch_size`, then made durable once.

        The consumer calls this with the records of each fetch (`streams/transport.py`) and
        acks them when it returns: Faust's per-message path (a message, an event, a queue,
        a stream step and an ack per record) cost more than the inventory logic itself."""
        size = settings.batch_size

        async def handle(records: Mapping[Any, Sequence[Any]]) -> None:
            messages = fetched_messages(topic, records)
            name = (topic, 0)
            try:
                for start in range(0, len(messages), size):
                    phases[name] = ("handling", time.monotonic())
                    await inventory_batch(topic, messages[start : start + size])
                phases[name] = ("waiting for the broker", time.monotonic())
                await durable()
            finally:
                # A failed batch (retried by the consumer) must not leave the stall watch
                # thinking a batch is in flight for good.
                phases.pop(name, None)

        return handle

    if settings.bulk_ingest:
        app.bulk_handlers[topics.sales.get_topic_name()] = bulk_inventory("pos.sales")
        app.bulk_handlers[topics.scans.get_topic_name()] = bulk_inventory("backroom.scans")

    # Alert books are read-modified-written by the inventory agents (alerts on the states they
    # compute) and by observation-alerts, with awaits in between (alerts must be durable before
    # the books that record them): one lock keeps those updates from overwriting each other.
    books_lock = asyncio.Lock()

    async def apply_inventory(result: InventoryResult) -> None:
        """Coalesced writes: one table value and one inventory.state per touched key, and the
        alerts those states raise, evaluated here rather than by consuming inventory.state back."""
        await write_values(inventory, result.values)
        async with books_lock:
            alerting = alert_processor.on_states(result.published, books_get)
            # CHECK_SHELF from the silent-shelf watch (docs/floor.md), merged into the cost order.
            alerting.alerts = order_by_cost([*alerting.alerts, *result.alerts])
            metrics.observe_batch("inventory.state", "alerts", len(result.published))
            await send_records(topics.state, result.published)
            await send_dead(topics.dead_letter, result.dead)
            await send_alerts(alerting)

    async def send_alerts(alerting: AlertResult) -> None:
        """Alerts first, then the books that say they were sent (caller holds `books_lock`).

        After a crash the batch is redelivered and its keys are evaluated again against the
        books: a book written ahead of its alert would suppress an alert lost in flight. So
        the alerts reach the broker before the books change (a crash in between sends an alert
        twice with the same alert_id and status, which consumers fold)."""
        await send_records(topics.alerts, alerting.alerts)
        await send_dead(topics.dead_letter, alerting.dead)
        if alerting.alerts:
            await durable()
        for key, value in alerting.books.items():
            alert_books[key] = value

    async def durable() -> None:
        """Wait until everything produced so far (table changelogs included) is on the broker.

        Faust's own flush gives up after 0.1 s without progress on its buffer (and so does the
        flush before its offset commit), which under load let offsets be committed ahead of the
        changelog: a kill -9 then lost those events. Drain the buffer until it is empty."""
        buffer = app.producer.buffer
        while buffer.size:
            await buffer.flush()
        await app.producer.flush()

    async def observation_alerts_batch(events: Sequence[EventT]) -> None:
        async with books_lock:
            result = alert_processor.process(raw_messages(events, "shelf.observations"), books_get)
            metrics.observe_batch("shelf.observations", "alerts", len(events), result.dead)
            await send_alerts(result)

    async def run_batches(stream: faust.StreamT, handle: Callable[[Sequence[EventT]], Awaitable[None]],
                          size: int = settings.batch_size) -> None:  # fmt: skip
        """Batches in, handled, durable, then acked: the only place events are acknowledged.

        `cadenced_batches` (streams/batching.py; like Faust's `noack_take`, not `take_events`,
        which also acks a batch when the agent is cancelled mid-batch on shutdown) leaves acking
        to us, so an offset is committed only after the batch's state and records reached the
        broker; anything else is redelivered and skipped by the per-key offset watermark."""
        s = cast(faust.Stream, stream)
        # Two agents can read one topic (shelf.observations): the stream tells them apart.
        name = (s.channel.get_topic_name() if isinstance(s.channel, faust.TopicT) else repr(s.channel), id(s))
        async for events in cadenced_batches(s, size, settings.batch_within_s):
            phases[name] = ("handling", time.monotonic())
            await handle(events)
            phases[name] = ("waiting for the broker", time.monotonic())
            await durable()
            for event in events:
                await s.ack(event)
            phases.pop(name, None)

    # One agent per source topic: each knows its record type, and they share the tables. With
    # `bulk_ingest` (the default) the consumer hands sales and scans to `bulk_inventory` instead,
    # and these two agents only keep the topics subscribed (and serve `test_context`). The
    # inventory read-modify-write of a batch has no await inside, so agents never interleave on
    # a key; alert books are guarded by `books_lock`.
    @app.agent(topics.sales, name="sales")
    async def sales_agent(stream: faust.StreamT) -> None:
        await run_batches(stream, lambda events: inventory_batch("pos.sales", raw_messages(events, "pos.sales")))

    @app.agent(topics.scans, name="scans")
    async def scans_agent(stream: faust.StreamT) -> None:
        await run_batches(
            stream, lambda events: inventory_batch("backroom.scans", raw_messages(events, "backroom.scans"))
        )

    @app.agent(topics.observations, name="observation-alerts")
    async def observation_alerts_agent(stream: faust.StreamT) -> None:
        await run_batches(stream, observation_alerts_batch)

    @app.agent(topics.observations, name="shelf-fill")
    async def shelf_fill_agent(stream: faust.StreamT) -> None:
        async def handle(events: Sequence[EventT]) -> None:
            result = inventory_processor.process_observations(
                raw_messages(events, "shelf.observations"), inventory_get, catalog_get
            )
            metrics.observe_batch("shelf.observations", "shelf-fill", len(events), result.dead)
            await apply_inventory(result)

        await run_batches(stream, handle)

    @app.agent(topics.planograms, name="planograms")
    async def planogram_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = raw_messages([event], "catalog.planograms")[0]
            metrics.observe_batch(msg.topic, "planograms", 1)
            key = msg.key.decode("utf-8", errors="replace") if msg.key else ""
            try:
                pg = decode(Planogram, msg.value, 4 * settings.max_event_bytes)
                if key != f"{pg.store_id}:{pg.camera_id}":
                    raise InvalidEvent(f"key {key!r} does not match store_id:camera_id")
            except InvalidEvent as exc:
                metrics.dead_lettered(msg.topic)
                await send_dead(topics.dead_letter, [dead_letter(msg, exc.reason)])
                continue
            planograms[key] = pg.to_dict()

    vision = VisionRunner(settings)

    @app.agent(topics.frames, name="vision")
    async def vision_agent(stream: faust.StreamT) -> None:
        async def handle(events: Sequence[EventT]) -> None:
            msgs = raw_messages(events, "camera.frames")
            t0 = time.perf_counter()
            result = await vision.run(msgs, planograms.get)
            metrics.observe_inference(len(msgs), time.perf_counter() - t0)
            metrics.observe_batch("camera.frames", "vision", len(msgs), result.dead)
            await send_records(topics.observations, result.observations)
            await send_dead(topics.dead_letter, result.dead)

        await run_batches(stream, handle, settings.vision_batch)

    @app.agent(topics.catalog, name="catalog")
    async def catalog_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = raw_messages([event], "catalog.skus")[0]
            metrics.observe_batch(msg.topic, "catalog", 1)
            key = msg.key.decode("utf-8", errors="replace") if msg.key else ""
            try:
                if msg.value is None:
                    catalog.pop(key, None)  # a tombstone removes the entry
                    continue
                entry = decode(CatalogSku, msg.value, settings.max_event_bytes)
                store, _, sku = key.partition(":")
                if not store or sku != entry.sku:
                    raise InvalidEvent(f"key {key!r} must be '{{store_id}}:{entry.sku}' or '*:{entry.sku}'")
            except InvalidEvent as exc:
                metrics.dead_lettered(msg.topic)
                await send_dead(topics.dead_letter, [dead_letter(msg, exc.reason)])
                continue
            catalog[key] = entry.to_dict()

    feedback_agent = add_feedback_agent(app, settings, _topic(app, settings, "alerts.feedback"), topics.dead_letter,
                                        alert_books, inventory_processor, books_lock)  # docs/floor.md
    app.backroom_agents = {  # type: ignore[attr-defined]
        "feedback": feedback_agent,
        "sales": sales_agent,
        "scans": scans_agent,
        "observation_alerts": observation_alerts_agent,
        "catalog": catalog_agent,
        "shelf_fill": shelf_fill_agent,
        "planograms": planogram_agent,
        "vision": vision_agent,
    }
    if settings.transfers:  # TRANSFER across partitions: inventory.by-sku (docs/floor.md)
        app.backroom_agents.update(add_transfer_agents(app, settings, topics, alert_books))  # type: ignore[attr-defined]
    return app
