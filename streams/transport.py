"""Faust's Kafka consumer with a cheaper hand-off of each fetched message to the agents.

    app = BackroomApp(...)        # streams/app.py builds the worker with it; nothing else changes

Faust hands every fetched message to its streams with `Service.wait_first(callback(message),
suspend_flow.wait())`: four asyncio tasks and an `asyncio.wait` per message, so that a
rebalance (which sets `suspend_flow`) can abandon a delivery stuck on a full stream buffer.
On this 2-core machine that is ~15 % of a no-op agent's time (py-spy, `streams/noop.py`).

Almost every delivery finishes without waiting (the stream buffer has room, flow control is
open), so here the delivery coroutine is first stepped by hand: when it completes on that step,
no task was needed. Only when it suspends is the rest of it wrapped in a task and raced against
`suspend_flow` exactly as Faust does, so rebalances behave as before. Everything else in the
fetch loop (read offsets, gap tracking for acks, commit-every) follows Faust's own loop, except
that source records fetched before a rebalance has ended are held until it has (see the loop).
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
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka


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
    def _new_consumer_thread(self) -> Any:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bulk sources (see `BulkHandler`): the last offset per partition whose batch is durable,
        # and whether a batch is being handled (a rebalance or shutdown waits for that in
        # `wait_empty`; not for a batch still held for the rebalance itself to end).
        self._bulk_done: dict[Any, int] = {}
        self._bulk_idle = asyncio.Event()
        self._bulk_idle.set()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        callback = self.callback
        app = self.app
        bulk_handlers = cast(BackroomApp, app).bulk_handlers
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        is_changelog_tp = self._is_changelog_tp
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
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
                    if app.rebalancing and not is_changelog_tp(tp):
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
                        self._n_acked = 0
                        await self.commit()
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
                        self._n_acked = 0
                        await self.commit()
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
                           generation_id: int) -> None:  # fmt: skip  # pragma: no cover
        app, read_offset = self.app, self._read_offset
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
            for tp, records in records_by_tp.items():
                last = records[-1].offset
                read_offset[tp] = last
                self._bulk_done[tp] = last
                self._acked.setdefault(tp, [])  # the entry makes `commit` look at this partition
                self._n_acked += len(records)

    def _new_offset(self, tp: Any) -> int | None:
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
    (`BackroomApp.fetch_min_bytes`, `fetch_max_wait_ms`; Faust sets neither)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        app = self.app
        # aiokafka hands these to its fetcher at start().
        consumer._fetch_min_bytes = getattr(app, "fetch_min_bytes", 1)
        consumer._fetch_max_wait_ms = getattr(app, "fetch_max_wait_ms", 1500)
        return consumer


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class BackroomApp(faust.App):
    """A Faust app whose consumer uses the cheaper per-message hand-off above, and holds
    source records fetched while a rebalance is still being finished (`rebalance_ended`)."""

    fetch_min_bytes = 1
    fetch_max_wait_ms = 1500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Topic name -> handler for its records in bulk (see `BulkHandler`).
        self.bulk_handlers: dict[str, BulkHandler] = {}
        # Set when a rebalance has ended: the consumer holds source records until then.
        self.rebalance_ended = asyncio.Event()

    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        self.rebalance_ended.set()

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


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
            active = consumer._get_active_partitions()
            buffered = consumer._buffered_partitions
            for tp in stalled:
                consumer.log.warning(
                    "partition %s stopped at offset %s with more on the broker (fetching it: %s, "
                    "held as buffer-full: %s): reading it again from the committed offset",
                    tp, read_now[tp], tp in active, tp in buffered,
                )  # fmt: skip
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


class KeyPartitioner:
    """Kafka's default partitioning of keyed records (murmur2, as aiokafka's `DefaultPartitioner`
    and the Java client), with each key's hash remembered.

    aiokafka's murmur2 is pure Python, ~9 µs a key, and the worker sends two or three keyed
    records per event (the changelog value, `inventory.state`, alerts): ~10 % of its time at
    100k keys. Hashes are kept for up to `size` keys (~100 bytes each), then forgotten at once,
    so memory stays bounded whatever the key count; the partition is the same either way."""

    def __init__(self, size: int = 1 << 18) -> None:
        self.size = size
        self._hashes: dict[bytes, int] = {}
        self._unkeyed = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return self._unkeyed(key, all_partitions, available)  # type: ignore[no-any-return]
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self.size:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]
