"""Everything Backroom changes inside Faust and aiokafka, in one place.

    from streams.faust_internals import BackroomApp, TRANSPORT_SCHEME, memory_store_url
    app = BackroomApp(id, broker=[f"{TRANSPORT_SCHEME}://host:9092"], ...)   # streams/app.py
    pytest tests/stream/test_faust_internals.py      # fails when an overridden internal changes

The pins in pyproject.toml (faust-streaming, aiokafka, mode-streaming: exact versions) and the
guard test move together with this module. Every Faust/aiokafka name with a leading underscore
that the worker overrides, calls or writes is here and nowhere else in its modules (the soak
benchmark's probe consumer reads aiokafka's `_client` for a metadata refresh).

What is plugged in through Faust's own extension points (no private name involved):
- the transport: `Transport` is registered in Faust's transport registry under the URL scheme
  `backroom://` (`faust.transport.drivers.TRANSPORTS`), so the app picks it, its consumer and
  its producer from the broker URL, as it picks `kafka://`;
- the table stores: `KeepingMemoryStore` is registered in the store registry as
  `backroom-memory://`, and the disk store (`streams.rocksdb_store.RocksStore`, on
  `KeyedRocksStore` below) as `backroom-rocksdb://` (`faust.stores.STORES`); tables name them
  with their `store=` argument (`store_url`), and the read cache's size with `options=`;
- the producer buffer's size: an attribute of each producer's own buffer (`Producer`), not a
  process-wide change of `ProducerBuffer.max_messages`;
- acks of bulk records take Faust's `ack_lock` (faust-streaming 0.15), as `Consumer.ack` does.

What must stay custom, and why (each one pinned by the guard test):
1. `Consumer._new_consumer_thread`: Faust names its consumer-thread class in code, no setting.
2. `Consumer._drain_messages`: Faust's fetch loop, with (a) the cheaper hand-off of each message
   (Faust spends four asyncio tasks and an `asyncio.wait` per message to race each delivery
   against `suspend_flow`: ~15 % of a no-op agent here; the delivery is stepped once by hand
   and raced only when it suspends, `_finish`), (b) source records fetched while a rebalance
   is still being finished held until it has ended (delivered earlier they were dropped with
   the stream queues and committed past: the kill -9 test lost ~85 offsets per partition), and
   (c) the bulk path: records of `bulk_handlers` topics handed over per fetch, acked in one
   step once durable (`mark_bulk_done`). Faust has no hook in that loop.
3. `Consumer._new_offset`: the commit offset of a bulk partition is its last durable record + 1.
4. `ConsumerThread._create_worker_consumer`: Faust builds the aiokafka consumer with
   `fetch_max_wait_ms=1500` hard-coded and no `fetch_min_bytes` argument, and has no setting for
   either; both are aiokafka constructor arguments, set here on the new consumer before it
   starts (aiokafka hands them to its fetcher in `start()`).
5. `KeyedRocksStore._get`, `_set`, `_del`, `_contains` (Faust's RocksDB store): Faust finds a
   key's partition database from the event being processed, or by probing every partition's
   database; the bulk path writes outside any event, so the partition is computed from the key.
   It calls `_db_for_partition`, `_encode_key` and `_decode_value` of the same store.
Private names read (not overridden): `_read_offset`, `_committed_offset`, `_acked`, `_n_acked`,
`_paused_partitions`, `_buffered_partitions`, `_get_active_partitions`, `_wait_next_records`,
`_to_message`, `_add_gap`, `_ensure_consumer` (consumer), `_enable_passive`, `_processors`
(stream), `_asyncio_future_blocking` (asyncio).

Partitions that stopped after a rebalance (what `StallWatch` repairs). After every rebalance
Faust seeks the source partitions to their committed offsets (`Consumer.perform_seek`, via
aiokafka's `seek_to_committed`), and relies on that seek to re-read anything its fetch loop took
from aiokafka but did not deliver: the rest of a fetch abandoned at a flow stop or a generation
change, records fetched in a generation that has ended. aiokafka's `seek_to_committed` seeks
only partitions whose committed offset is above 0 (`if offset and offset > 0`); a partition
with nothing committed yet (or committed at 0) keeps its fetch position, past the records that
were dropped, and nothing reads them again until another rebalance. That is the stall the
watch saw: read offset frozen, flow active, nothing paused, records on the broker, and its
repair needed "the earliest offset when nothing was committed". `ConsumerThread.
seek_to_committed` seeks those source partitions to their start as well (what
`auto_offset_reset=earliest` means for them); redelivered events are skipped by the per-key
offset watermark. `StallWatch` stays as a watchdog that logs a warning and counts each repair
(`repairs`), so a stall with another cause shows up in the log instead of as lost events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Mapping,
    Sequence,
)
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2
from faust.stores import STORES
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ack_lock


async def _finish(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Run a coroutine that has already been stepped once (and yielded `yielded`) to its end,
    the way an asyncio Task would: wait for what it waits on, then resume it."""
    gen = cast(Generator[Any, Any, Any], coro)
    try:
        while True:
            try:
                if yielded is None:  # a bare yield (asyncio.sleep(0))
                    await asyncio.sleep(0)
                else:
                    # What a Task does with a future its coroutine yields: take the "blocking"
                    # mark off (awaiting a future that still carries it is an error), then wait.
                    yielded._asyncio_future_blocking = False
                    await yielded
            except asyncio.CancelledError:
                yielded = gen.throw(asyncio.CancelledError())
                continue
            except BaseException:  # the coroutine's own await raises it again
                pass
            yielded = gen.send(None)
    except StopIteration as stop:
        return stop.value


# Records of one topic from one fetch, by partition (aiokafka ConsumerRecords: .offset, .key,
# .value): the handler returns once everything they caused is durable on the broker.
BulkHandler = Callable[[Mapping[Any, Sequence[Any]]], Awaitable[None]]


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with the cheaper hand-off and the bulk path (module docstring)."""

    def _new_consumer_thread(self) -> Any:  # Faust internal #1 (no setting names the class)
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bulk sources (see `BulkHandler`): the last offset per partition whose batch is durable,
        # and whether a batch is being handled (a rebalance or shutdown waits for that in
        # `wait_empty`; not for a batch still held for the rebalance itself to end).
        self._bulk_done: dict[Any, int] = {}
        self._bulk_idle = asyncio.Event()
        self._bulk_idle.set()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust internal #2
        callback = self.callback
        app = self.app
        bulk_handlers = cast(BackroomApp, app).bulk_handlers
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        commit_every = app.conf.broker_commit_every
        since_yield = 0
        try:
            # Service.should_stop: stopped or crashed (Faust's loop reads the stopped flag alone).
            while not (self.should_stop or fetcher.should_stop):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched, active = await self._wait_next_records(1.0)
                generation_id = app.consumer_generation_id
                await asyncio.sleep(0)  # the fetch can return at once, again and again
                if not fetched or self.should_stop:
                    continue
                if not self.flow_active:
                    await self.perform_seek()  # what Faust's getmany does with a stopped flow
                    continue
                bulk = {}
                if bulk_handlers:
                    bulk = {tp: recs for tp, recs in fetched.items() if tp.topic in bulk_handlers}
                    fetched = {tp: recs for tp, recs in fetched.items() if tp not in bulk}
                async for tp, message in self._messages(fetched, active, generation_id):
                    since_yield += 1
                    if since_yield > 100:  # let health checks and timers in during big fetches
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    if app.rebalancing and tp.topic not in app.tables.changelog_topics:
                        # Source records fetched while the worker still finishes a rebalance
                        # (Faust resumes the source partitions, then seeks them to the
                        # committed offsets, then resumes flow control, which empties every
                        # stream's queue): delivered now, they would be dropped with the
                        # queues, and the seek would set the read offset back under them, so
                        # the next record would add them as a gap and commit past them (the
                        # kill -9 test lost ~85 offsets per partition that way). Hold them
                        # until the rebalance has ended: then the queues stay as they are.
                        # (A record of the generation before is dropped below, as the
                        # rebalance's recovery needs this loop to read the changelogs.)
                        await self._wait_rebalance_end(message.generation_id)
                        if self.should_stop:
                            break
                    if message.generation_id != app.consumer_generation_id:
                        # Fetched before a rebalance that has happened since (the awaits above
                        # let it in): streams would skip it, and moving the read offset past
                        # it would drop it again when the partition is re-read from its
                        # committed offset. Leave both to the re-read.
                        continue
                    read = get_read_offset(tp)
                    if read is not None and offset < read:
                        continue  # already delivered (Faust drops these too)
                    if read and offset - read > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, read + 1, offset)  # e.g. compacted or aborted
                    if commit_every is not None and self._n_acked >= commit_every:
                        await self._commit_now()
                    delivery = cast(Coroutine[Any, Any, Any], callback(message))
                    if suspended():
                        await self.wait_first(delivery, self.suspend_flow.wait())
                    else:
                        try:
                            step = delivery.send(None)
                        except StopIteration:
                            pass  # delivered without waiting: the common case
                        else:
                            rest = asyncio.ensure_future(_finish(delivery, step))
                            await self.wait_first(rest, self.suspend_flow.wait())
                    if message.generation_id == app.consumer_generation_id:
                        set_read_offset(tp, offset)
                if bulk and not self.should_stop:
                    # Shielded: a shutdown that cancels this loop lets the batch finish (and
                    # `wait_empty` waits for it) rather than abandoning it half-sent.
                    await asyncio.shield(self._bulk(bulk, active, generation_id))
                    if commit_every is not None and self._n_acked >= commit_every:
                        await self._commit_now()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _messages(
        self, records: Any, active: Any, generation_id: int
    ) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's `getmany` after its fetch: records as messages, round-robin over partitions,
        stopping at a flow stop or a generation change."""
        to_message = self._to_message
        buffered = self._buffered_partitions
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                break
            if active is None or tp in active or tp in buffered:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

    async def _bulk(
        self, fetched: dict[Any, list[Any]], active: Any, generation_id: int
    ) -> None:  # pragma: no cover
        """Hand a fetch's records of bulk topics to their handlers, then ack them in one step.

        The rules of the per-message loop above, per partition instead of per record: held while
        a rebalance is being finished, dropped when fetched in a generation that has ended,
        records before the read offset skipped. Acked (`_bulk_done`) only after the handler
        returned, i.e. after its state and records are durable; a handler that fails leaves the
        partitions where they were, to be fetched again."""
        app = self.app
        if app.rebalancing:
            await self._wait_rebalance_end(generation_id)
        if generation_id != app.consumer_generation_id or self.should_stop:
            return  # re-read from the committed offsets of the new assignment
        by_topic: dict[str, dict[Any, list[Any]]] = {}
        read_offset = self._read_offset
        now = time.monotonic()
        for tp, records in fetched.items():
            if active is not None and tp not in active:
                continue
            read = read_offset.get(tp)
            if read is not None and records[0].offset < read:
                records = [r for r in records if r.offset >= read]
            if records:
                by_topic.setdefault(tp.topic, {})[tp] = records
                app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                app.monitor.stream_inbound_time[tp] = now  # Faust's "stream is idle" check
        handlers = cast(BackroomApp, app).bulk_handlers
        self._bulk_idle.clear()
        try:
            await self._bulk_handle(handlers, by_topic, generation_id)
        finally:
            self._bulk_idle.set()

    async def _bulk_handle(self, handlers: dict[str, BulkHandler], by_topic: dict[str, dict[Any, list[Any]]],
                           generation_id: int) -> None:  # pragma: no cover
        app = self.app
        for topic, records_by_tp in by_topic.items():
            try:
                await handlers[topic](records_by_tp)
            except Exception as exc:
                self.log.exception(
                    "bulk handler for %s failed (%r): fetching its records again", topic, exc
                )
                for tp, records in records_by_tp.items():
                    await self.seek(tp, records[0].offset)
                await asyncio.sleep(1.0)
                continue
            if generation_id != app.consumer_generation_id:
                continue  # durable, but the partitions may be someone else's now: let them re-read
            self.mark_bulk_done(records_by_tp)

    def mark_bulk_done(self, records_by_tp: Mapping[Any, Sequence[Any]]) -> None:
        """Step 5 of `streams.checkpoint.Checkpoint` for bulk records: everything up to each
        partition's last record is durable, so the committer may commit past it.

        Under Faust's `ack_lock`, as `Consumer.ack` writes the same bookkeeping."""
        read_offset = self._read_offset
        with ack_lock:
            for tp, records in records_by_tp.items():
                last = records[-1].offset
                read_offset[tp] = last
                self._bulk_done[tp] = last
                self._acked.setdefault(tp, [])  # the entry makes `commit` look at this partition
                self._n_acked += len(records)

    async def _commit_now(self) -> None:
        """Faust's commit-every: reset the count of acks (under `ack_lock`), then commit."""
        with ack_lock:
            self._n_acked = 0
        await self.commit()

    def _new_offset(self, tp: Any) -> int | None:  # Faust internal #3
        done = self._bulk_done.get(tp)
        if done is not None:
            return done + 1  # a bulk partition: everything up to `done` is durable
        return cast(int | None, super()._new_offset(tp))

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        for tp in revoked:
            self._bulk_done.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def wait_empty(self) -> None:
        # Faust waits for the messages its streams have not acked; a bulk batch is not one.
        await self._bulk_idle.wait()
        await super().wait_empty()

    async def _wait_rebalance_end(self, generation_id: int | None) -> None:  # pragma: no cover
        """Until the rebalance under way has ended, or the generation has moved on."""
        app = self.app
        ended = cast(BackroomApp, app).rebalance_ended
        while (
            app.rebalancing and generation_id == app.consumer_generation_id and not self.should_stop
        ):
            # Cleared here, on the app's loop, where `on_rebalance_end` sets it (a rebalance
            # starts on the consumer's thread: only Faust's flag is touched there).
            ended.clear()
            if not app.rebalancing:
                break
            # mode waits on an asyncio.Event as on its own (typed for its own only)
            await self.wait_for_stopped(cast(Any, ended), timeout=0.1)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with fetch requests that may wait for data on the broker
    (`BackroomApp.fetch_min_bytes`, `fetch_max_wait_ms`) and a seek to committed offsets that
    covers partitions with nothing committed (module docstring: the stall)."""

    def _create_worker_consumer(self, transport: Any) -> Any:  # Faust internal #4
        consumer = super()._create_worker_consumer(transport)
        app = self.app
        # aiokafka's constructor arguments `fetch_min_bytes`/`fetch_max_wait_ms`, which Faust
        # does not pass through; aiokafka hands them to its fetcher at start().
        consumer._fetch_min_bytes = getattr(app, "fetch_min_bytes", 1)
        consumer._fetch_max_wait_ms = getattr(app, "fetch_max_wait_ms", 1500)
        return consumer

    async def seek_to_committed(self) -> Mapping[Any, int]:
        return cast(Mapping[Any, int], await self.call_thread(self._seek_committed_or_start))

    async def _seek_committed_or_start(self) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        committed = cast(Mapping[Any, int], await consumer.seek_to_committed())
        # aiokafka leaves a partition committed at 0 or not at all where it is; a source
        # partition then has to start over (changelogs are positioned by table recovery).
        changelogs = self.app.tables.changelog_topics
        from_start = [tp for tp, offset in committed.items()
                      if (offset is None or offset <= 0) and tp.topic not in changelogs]
        if from_start:
            await consumer.seek_to_beginning(*from_start)
        return committed


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer whose buffer holds `BackroomApp.producer_buffer_messages`.

    Faust pauses the whole conductor whenever more than `ProducerBuffer.max_messages` (100)
    records wait in the buffer; one coalesced batch writes one changelog record per touched key,
    often more than 100."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        wanted = getattr(self.app, "producer_buffer_messages", 0)
        self.buffer.max_messages = max(self.buffer.max_messages, wanted)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer


# Faust picks a transport by the broker URL's scheme, and a store by the store URL's scheme.
TRANSPORT_SCHEME = "backroom"
TRANSPORTS.aliases[TRANSPORT_SCHEME] = f"{__name__}:Transport"
MEMORY_STORE_SCHEME = "backroom-memory"
STORES.aliases[MEMORY_STORE_SCHEME] = f"{__name__}:KeepingMemoryStore"


ROCKSDB_STORE_SCHEME = "backroom-rocksdb"
# By name: rocksdict is imported only when a table opens this store.
STORES.aliases[ROCKSDB_STORE_SCHEME] = "streams.rocksdb_store:RocksStore"


def memory_store_url(store: str) -> str | None:
    """The store URL a table names (`store=`): `KeepingMemoryStore` where the app's store is
    Faust's memory store, else None (the app's store)."""
    # With a host: an URL with none is false, and Faust then falls back to the app's store.
    return f"{MEMORY_STORE_SCHEME}://localhost" if store.startswith("memory:") else None


def store_url(store: str, table: str) -> str | None:
    """The store URL versioned table `table` names: `KeepingMemoryStore` for `memory://`, the
    disk store keyed like its topics (`streams.rocksdb_store.RocksStore`) for `rocksdb://`, else
    None (the app's store)."""
    if store.startswith("rocksdb:"):
        # The table's name as the URL's path, as Faust's own `rocksdb://` gets it: the files'
        # name (`{table}-{partition}.db` under the app's table dir).
        return f"{ROCKSDB_STORE_SCHEME}:{table}"
    return memory_store_url(store)


class BackroomApp(faust.App):
    """A Faust app on the `backroom://` transport: the cheaper per-message hand-off, the bulk
    path (`bulk_handlers`), source records held while a rebalance is still being finished
    (`rebalance_ended`), and the fetch and producer-buffer sizes below."""

    fetch_min_bytes = 1
    fetch_max_wait_ms = 1500
    producer_buffer_messages = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Topic name -> handler for its records in bulk (see `BulkHandler`).
        self.bulk_handlers: dict[str, BulkHandler] = {}
        # Set when a rebalance has ended: the consumer holds source records until then.
        self.rebalance_ended = asyncio.Event()

    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        self.rebalance_ended.set()


class KeepingMemoryStore(MemoryStore):
    """Faust's in-memory store, minus its clean-up after each rebalance (`backroom-memory://`).

    After every recovery the stock store deletes the keys it replayed for partitions that are
    not active here (standby replicas included), while Faust's recovery keeps reading a standby
    partition from the offset it had reached: promoted to active later, that partition came back
    without every key whose last write was older. The two-worker graceful-leave test
    (`make test-reliability`) caught it as versions behind after the leaver's partitions moved.
    Keeping the values costs memory for partitions this worker gave away, nothing else: a
    partition that comes back is replayed over them, newer versions winning."""

    async def on_recovery_completed(self, active_tps: set[Any], standby_tps: set[Any]) -> None:
        return None

    def get_raw(self, key: str) -> Any:
        """The stored value, straight from the store's dict (`Mapping.get` on the store is a
        try/except around `__getitem__` in Python: ~2 % of the worker at 100k keys)."""
        return self.data.get(key)

    def put_raw(self, values: Mapping[str, Any]) -> None:
        """Set values with no await in between (see `streams.tables.write_values`)."""
        self.data.update(values)


MB = 1024 * 1024


class KeyedRocksStore(RocksDBStore):
    """Faust's RocksDB store with a key's partition computed from the key, as the producer's
    partitioner does: one database read per get, and writes work outside any Faust event (the
    bulk path, `streams.rocksdb_store.RocksStore.write_bulk`). Everything else is Faust's: one
    RocksDB per partition under the worker's data dir, the changelog offset persisted in it,
    the recovery and rebalance protocol.

    `options`: Faust's RocksDB options plus `cache_mb`, the block cache of the whole table,
    shared out over its partition databases (Faust's default is 2 GiB per database)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # A copy: Faust's store pops from the table's own options dict.
        options = dict(kwargs.pop("options", None) or {})
        cache_mb = int(options.pop("cache_mb", 256))
        options.setdefault("driver", "rocksdict")
        super().__init__(*args, options=options, **kwargs)
        partitions = max(1, self.table.partitions or 1)
        self.partitions = partitions
        self.all_partitions = list(range(partitions))
        self.rocksdb_options.block_cache_size = max(1, cache_mb // partitions) * MB
        # Compressed blocks are a second cache in python-rocksdb only; rocksdict ignores it.
        self.rocksdb_options.block_cache_compressed_size = 0

    def partition_of(self, key: bytes) -> int:
        # The producer's partitioner (streams.partitioner.KeyPartitioner: Kafka's murmur2, with
        # the hashes it computed for the changelog records remembered).
        conf: Any = self.table.app.conf
        partitioner: Any = conf.producer_partitioner
        if callable(partitioner):
            return int(partitioner(key, self.all_partitions, self.all_partitions))
        return (murmur2(key) & 0x7FFFFFFF) % self.partitions

    def db_for_partition(self, partition: int) -> Any:
        """The partition's database (opened on first use)."""
        return self._db_for_partition(partition)

    def _set(self, key: bytes, value: bytes | None) -> None:  # Faust internal #5
        self._db_for_partition(self.partition_of(key)).put(key, value)

    def _get(self, key: bytes) -> bytes | None:  # Faust internal #5
        return cast(bytes | None, self._db_for_partition(self.partition_of(key)).get(key))

    def _del(self, key: bytes) -> None:  # Faust internal #5
        self._db_for_partition(self.partition_of(key)).delete(key)

    def _contains(self, key: bytes) -> bool:  # Faust internal #5
        return self._get(key) is not None

    def get(self, key: Any, default: Any = None) -> Any:
        # Mapping.get is a try/except around __getitem__: a miss (most keys of a key-diverse
        # batch have no alert book) raised and caught a KeyError each.
        value = self._get(self._encode_key(key))
        return default if value is None else self._decode_value(value)


def iterate_in_background(stream: faust.StreamT) -> None:
    """Iterate a stream in the background so its processors see every event, as Faust's own
    `take` does (`Stream._enable_passive`)."""
    s: Any = stream
    s._enable_passive(aiter(s.channel))


def remove_processor(stream: faust.StreamT, processor: Callable[[Any], Any]) -> None:
    """Undo `Stream.add_processor` (Faust has no public way)."""
    cast(Any, stream)._processors.remove(processor)


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """Faust's record of the offsets it committed, per partition (no public accessor)."""
    return cast(Mapping[Any, int | None], getattr(consumer, "_committed_offset", {}))


class StallWatch:
    """Re-reads source partitions that stopped moving while records wait on the broker.

    After a rebalance that lands while a fetched batch is still being handed out, Faust can drop
    the rest of that batch (its `getmany` stops at a generation change) after the partition was
    already re-positioned past it; nothing reads those records again until the next rebalance.
    Seen here in the two-worker graceful-leave test: a partition's read offset frozen at 76 of
    159, flow active, nothing paused, no batch in progress. Each `check` compares read offsets
    with the previous one; a partition that did not move, is not paused and has records beyond
    what was read and committed, while no batch is in flight, is sought back to its committed
    offset, or its earliest one when nothing was committed (and put back in the fetch set,
    should a cleared stream buffer have left it out).
    Redelivered events are then skipped by the per-key offset watermark.
    """

    def __init__(self, topics: set[str]) -> None:
        self.topics = topics
        self.last: dict[Any, int | None] = {}
        self.repairs = 0  # partitions sought back so far

    async def check(self, consumer: Any, busy: bool) -> list[Any]:
        if busy or not consumer.flow_active:
            self.last.clear()
            return []
        tps = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        if not tps:
            return []
        ends = await consumer.highwaters(*tps)
        read_now = {tp: consumer._read_offset.get(tp) for tp in tps}
        paused = consumer._paused_partitions  # paused on purpose (recovery); "buffered" ones are not
        stalled = []
        for tp in tps:
            read, end = read_now[tp], ends.get(tp)
            committed = consumer._committed_offset.get(tp)
            if end is None or tp in paused or tp not in self.last or self.last[tp] != read:
                continue
            done = max(read + 1 if read is not None else 0, committed or 0)
            # One offset of slack: a transactional producer's commit marker ends a partition
            # with an offset no consumer ever receives.
            if end - done > 1:
                stalled.append(tp)
        self.last = read_now
        if stalled:
            self.repairs += len(stalled)
            active = consumer._get_active_partitions()
            buffered = consumer._buffered_partitions
            for tp in stalled:
                consumer.log.warning(
                    "partition %s stopped at offset %s with more on the broker (fetching it: %s, "
                    "held as buffer-full: %s): reading it again from the committed offset",
                    tp, read_now[tp], tp in active, tp in buffered,
                )
                # A partition taken out of the fetch set for a full stream buffer comes back
                # when the buffer drains; a rebalance that clears the buffer skips that.
                buffered.discard(tp)
                active.add(tp)
            # An explicit seek per partition (Faust's seek-to-committed skips a partition with
            # no committed offset, and one committed at 0): it resets the fetch state.
            no_commit = [tp for tp in stalled if consumer._committed_offset.get(tp) is None]
            earliest = await consumer.earliest_offsets(*no_commit) if no_commit else {}
            for tp in stalled:
                committed = consumer._committed_offset.get(tp)
                await consumer.seek(tp, committed if committed is not None else earliest.get(tp, 0))
            self.last.clear()
        return stalled
