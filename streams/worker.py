"""The worker's handlers: what each agent and the bulk path do with a batch.

    worker = Worker(app, settings, topics, tables)     # streams/app.py:create_app
    app.agent(topics.sales, name="sales")(worker.sales)

A `Worker` holds the plain processors (backroom/), the tables, the topics and one `Checkpoint`
(streams/checkpoint.py); every batch goes: raw messages -> a processor -> table values and
records -> the checkpoint's steps -> acked. Agents stay thin: each is one method here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import EventT

from backroom.budget import order_by_cost
from backroom.master_data import CatalogProcessor, MasterDataResult, PlanogramProcessor
from backroom.processing import (
    AlertProcessor,
    AlertResult,
    InventoryProcessor,
    InventoryResult,
    RawMessage,
)
from backroom.records import DeadLetter
from backroom.settings import Settings
from streams.batching import cadenced_batches
from streams.checkpoint import Checkpoint, ack_all
from streams.faust_internals import BulkHandler, StallWatch
from streams.metrics import Metrics
from streams.runtime import release_free_memory
from streams.tables import Tables, reader, write_books, write_values
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
            for tp, recs in records.items() for r in recs]


async def send_dead(topic: faust.TopicT, dead: Sequence[DeadLetter]) -> None:
    for d in dead:
        log.warning("dead-letter %s[%s]@%s: %s", d.source_topic, d.partition, d.offset, d.error)
        await topic.send(key=d.key.encode() if d.key else None, value=d.to_json())


Handle = Callable[[Sequence[EventT]], Awaitable[None]]


class Worker:
    def __init__(self, app: faust.App, settings: Settings, topics: Topics, tables: Tables,
                 metrics: Metrics) -> None:
        self.app, self.settings, self.topics, self.tables, self.metrics = app, settings, topics, tables, metrics
        self.inventory = InventoryProcessor(settings)
        self.alerts = AlertProcessor(settings)
        self.catalog_entries = CatalogProcessor(settings)
        self.planogram_entries = PlanogramProcessor(settings)
        self.vision_runner = VisionRunner(settings)
        self.checkpoint = Checkpoint(lambda: app.producer)
        # The stored bytes of a key: the processor parses them, unless they are the very value
        # it wrote last for that key (`backroom.processing.LiveStates`).
        self.inventory_get = reader(tables.inventory)
        self.catalog_get, self.books_get = reader(tables.catalog), reader(tables.alert_books)
        # Alert books are read-modified-written by the inventory batches (alerts on the states
        # they compute) and by observation-alerts, with awaits in between (alerts must be
        # durable before the books that record them): one lock keeps those from overwriting
        # each other. The inventory read-modify-write has no await inside, so batches never
        # interleave on a key there.
        self.books_lock = asyncio.Lock()
        self.stats = {"events": 0, "batches": 0, "dead": 0, "duplicates": 0}
        # What each batch is doing, for the log: a batch that hangs shows up in `tick`.
        self.phases: dict[tuple[str, int], tuple[str, float]] = {}  # (source, id) -> (phase, since)
        sources = (topics.sales, topics.scans, topics.observations, topics.frames)
        self.stall_watch = StallWatch({t.get_topic_name() for t in sources})

    # --- agents: one method each ------------------------------------------------------------

    async def sales(self, stream: faust.StreamT) -> None:
        await self.run_batches(stream, self.inventory_events("pos.sales"))

    async def scans(self, stream: faust.StreamT) -> None:
        await self.run_batches(stream, self.inventory_events("backroom.scans"))

    async def observation_alerts(self, stream: faust.StreamT) -> None:
        await self.run_batches(stream, self.observation_alerts_batch)

    async def shelf_fill(self, stream: faust.StreamT) -> None:
        await self.run_batches(stream, self.shelf_fill_batch)

    async def vision(self, stream: faust.StreamT) -> None:
        await self.run_batches(stream, self.vision_batch, self.settings.vision_batch)

    async def catalog(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            result = self.catalog_entries.process(raw_messages([event], "catalog.skus")[0])
            await self.apply_master_data("catalog.skus", "catalog", result, self.tables.catalog)

    async def planograms(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            result = self.planogram_entries.process(raw_messages([event], "catalog.planograms")[0])
            await self.apply_master_data("catalog.planograms", "planograms", result, self.tables.planograms)

    # --- the bulk path (sales and scans, `settings.bulk_ingest`) ---------------------------------

    def bulk_inventory(self, topic: str) -> BulkHandler:
        """Sales or scans from one fetch, in batches of `batch_size`, then made durable once.

        The consumer calls this with the records of each fetch (streams/faust_internals.py) and
        marks them done when it returns (checkpoint step 5): Faust's per-message path (a message,
        an event, a queue, a stream step and an ack per record) cost more than the inventory
        logic itself."""
        size = self.settings.batch_size

        async def handle(records: Mapping[Any, Sequence[Any]]) -> None:
            messages = fetched_messages(topic, records)
            name = (topic, 0)
            try:
                for start in range(0, len(messages), size):
                    self.phases[name] = ("handling", time.monotonic())
                    await self.inventory_batch(topic, messages[start : start + size])
                self.phases[name] = ("waiting for the broker", time.monotonic())
                await self.checkpoint.commit()  # the consumer marks the offsets on return
            finally:
                # A failed batch (retried by the consumer) must not leave the stall watch
                # thinking a batch is in flight for good.
                self.phases.pop(name, None)

        return handle

    # --- batches ----------------------------------------------------------------------------

    async def run_batches(self, stream: faust.StreamT, handle: Handle, size: int | None = None) -> None:
        """Batches in, handled, durable, then acked: the only place an agent's events are acked.

        `cadenced_batches` (streams/batching.py; like Faust's `noack_take`, not `take_events`,
        which also acks a batch when the agent is cancelled mid-batch on shutdown) leaves acking
        to us, so an offset is committed only after the batch's state and records reached the
        broker; anything else is redelivered and skipped by the per-key offset watermark."""
        s = cast(faust.Stream, stream)
        # Two agents can read one topic (shelf.observations): the stream tells them apart.
        name = (s.channel.get_topic_name() if isinstance(s.channel, faust.TopicT) else repr(s.channel), id(s))
        size = size or self.settings.batch_size
        async for events in cadenced_batches(s, size, self.settings.batch_within_s):
            self.phases[name] = ("handling", time.monotonic())
            await handle(events)
            self.phases[name] = ("waiting for the broker", time.monotonic())
            await self.checkpoint.commit(lambda: ack_all(s, events))  # noqa: B023 - awaited here
            self.phases.pop(name, None)

    def inventory_events(self, topic: str) -> Handle:
        async def handle(events: Sequence[EventT]) -> None:
            await self.inventory_batch(topic, raw_messages(events, topic))

        return handle

    async def inventory_batch(self, topic: str, messages: Sequence[RawMessage]) -> None:
        stats = self.stats
        stats["events"] += len(messages)
        stats["batches"] += 1
        result = self.inventory.process(messages, self.inventory_get, self.catalog_get)
        stats["dead"] += len(result.dead)
        stats["duplicates"] += result.duplicates
        self.metrics.observe_batch(topic, "inventory", len(messages), result.dead, result.duplicates)
        await self.apply_inventory(result)

    async def shelf_fill_batch(self, events: Sequence[EventT]) -> None:
        messages = raw_messages(events, "shelf.observations")
        result = self.inventory.process_observations(messages, self.inventory_get, self.catalog_get)
        self.metrics.observe_batch("shelf.observations", "shelf-fill", len(events), result.dead)
        await self.apply_inventory(result)

    async def apply_inventory(self, result: InventoryResult) -> None:
        """Coalesced writes: one table value and one inventory.state per touched key, and the
        alerts those states raise, evaluated here rather than by consuming inventory.state back."""
        await write_values(self.tables.inventory, result.values)
        async with self.books_lock:
            alerting = self.alerts.on_states(result.published, self.books_get)
            # CHECK_SHELF from the silent-shelf watch (docs/floor.md), merged into the cost order.
            alerting.alerts = order_by_cost([*alerting.alerts, *result.alerts])
            self.metrics.observe_batch("inventory.state", "alerts", len(result.published))
            await self.checkpoint.produce(self.topics.state.get_topic_name(), result.published)
            await send_dead(self.topics.dead_letter, result.dead)
            await self.send_alerts(alerting)

    async def observation_alerts_batch(self, events: Sequence[EventT]) -> None:
        async with self.books_lock:
            result = self.alerts.process(raw_messages(events, "shelf.observations"), self.books_get)
            self.metrics.observe_batch("shelf.observations", "alerts", len(events), result.dead)
            await self.send_alerts(result)

    async def send_alerts(self, alerting: AlertResult) -> None:
        """Checkpoint steps 1-3: alerts, then the books that say they were sent (the caller
        holds `books_lock`)."""
        await send_dead(self.topics.dead_letter, alerting.dead)
        books = self.tables.alert_books
        await self.checkpoint.alerts_then_books(self.topics.alerts.get_topic_name(), alerting.alerts,
                                                lambda: write_books(books, alerting.books))

    async def vision_batch(self, events: Sequence[EventT]) -> None:
        msgs = raw_messages(events, "camera.frames")
        t0 = time.perf_counter()
        result = await self.vision_runner.run(msgs, self.tables.planograms.get)
        self.metrics.observe_inference(len(msgs), time.perf_counter() - t0)
        self.metrics.observe_batch("camera.frames", "vision", len(msgs), result.dead)
        await self.checkpoint.produce(self.topics.observations.get_topic_name(), result.observations)
        await send_dead(self.topics.dead_letter, result.dead)

    async def apply_master_data(self, topic: str, agent: str, result: MasterDataResult,
                                table: faust.Table) -> None:
        self.metrics.observe_batch(topic, agent, 1)
        if result.dead is not None:
            self.metrics.dead_lettered(topic)
            await send_dead(self.topics.dead_letter, [result.dead])
        elif result.value is None:
            table.pop(result.key, None)  # a tombstone removes the entry
        else:
            table[result.key] = result.value

    # --- housekeeping -----------------------------------------------------------------------

    async def tick(self) -> None:
        """Every 10 s: the log line, batches that hang, the stall watch, free heap back to the OS."""
        stats = self.stats
        if stats["batches"]:
            live = self.inventory.live
            log.info("inventory: %(events)d events in %(batches)d batches, %(duplicates)d duplicates, "
                     "%(dead)d dead-lettered; states read live %(hits)d, parsed %(misses)d",
                     {**stats, "hits": live.hits, "misses": live.misses})
        now = time.monotonic()
        for (source, _), (phase, since) in list(self.phases.items()):
            if now - since > 10:
                log.warning("batch from %s has been %s for %.0f s", source, phase, now - since)
        try:
            await self.stall_watch.check(self.app.consumer, busy=bool(self.phases))
        except Exception as exc:  # a watchdog must not take the worker down
            log.warning("stall check failed: %r", exc)
        release_free_memory()  # RSS follows the live heap, not its peak (streams/runtime.py)
