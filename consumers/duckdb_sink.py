"""DuckDB history sink: every contract topic into `HistoryStore`, batched and idempotent.

Run: `backroom history` (follow forever) or `backroom history --once` (catch up, then exit).
The file is `settings.history_file` (default `<data_dir>/history.duckdb`).

One consumer group (`<app_id>-history`) reads all topics; each `getmany` batch is inserted with
`INSERT OR IGNORE` and only then are the offsets committed. A crash between insert and commit
replays the batch, which the primary keys absorb: at-least-once delivery, exactly-once rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from backroom.history import BY_TOPIC, HistoryStore, InsertResult, Row, history_path
from backroom.settings import Settings
from producers.kafka import make_consumer

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    batches: int = 0
    consumed: int = 0
    inserted: int = 0
    invalid: int = 0
    undecodable: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)


def decode_batch(
    topic_of: dict[str, str], batch: dict[TopicPartition, list], stats: SinkStats  # type: ignore[type-arg]
) -> dict[str, list[Row]]:
    """Kafka records -> rows per contract topic; undecodable values are counted, not fatal."""
    rows: dict[str, list[Row]] = {}
    for tp, records in batch.items():
        contract = topic_of[tp.topic]
        for rec in records:
            stats.consumed += 1
            try:
                value = orjson.loads(rec.value) if rec.value is not None else None
            except orjson.JSONDecodeError:
                value = None
            if not isinstance(value, dict):
                # Malformed input is the worker's to dead-letter; the dead-letter topic is stored.
                stats.undecodable += 1
                continue
            key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
            rows.setdefault(contract, []).append((tp.partition, rec.offset, key, value))
    return rows


async def run_sink(
    settings: Settings,
    store: HistoryStore | None = None,
    *,
    once: bool = False,
    group_id: str | None = None,
    max_records: int = 5000,
    idle_timeout_s: float = 3.0,
    join_timeout_s: float = 30.0,
    stop: asyncio.Event | None = None,
    on_batch: Callable[[SinkStats], None] | None = None,
) -> SinkStats:
    """Consume every contract topic into the store until stopped (or caught up with `once`)."""
    store = store or HistoryStore(history_path(settings))
    topic_of = {settings.topic(name): name for name in BY_TOPIC}
    consumer: AIOKafkaConsumer = make_consumer(
        settings, *BY_TOPIC, group_id=group_id or f"{settings.app_id}-history",
        max_poll_records=max_records,
    )
    stats = SinkStats()
    loop = asyncio.get_running_loop()
    await consumer.start()
    try:
        targets: dict[TopicPartition, int] | None = None
        idle_since = loop.time()
        join_deadline = loop.time() + join_timeout_s
        while stop is None or not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=max_records)
            if once and targets is None and consumer.assignment():
                # Where every partition ends now: --once stops there, later events wait.
                targets = dict(await consumer.end_offsets(list(consumer.assignment())))
            if batch:
                idle_since = loop.time()
                await _store_batch(settings, store, topic_of, batch, stats)
                await consumer.commit()
                if on_batch:
                    on_batch(stats)
            else:
                # Idle: let readers (`backroom ask`, the dashboard) open the file meanwhile.
                store.release()
            if once:
                if targets is not None and await _caught_up(consumer, targets):
                    break
                if targets is None and loop.time() > join_deadline:
                    log.warning("no partitions assigned within %.0f s; nothing to consume", join_timeout_s)
                    break
                if targets is not None and not batch and loop.time() - idle_since > idle_timeout_s:
                    break
    finally:
        await consumer.stop()
        store.release()
    return stats


async def _store_batch(
    settings: Settings,
    store: HistoryStore,
    topic_of: dict[str, str],
    batch: dict[TopicPartition, list],  # type: ignore[type-arg]
    stats: SinkStats,
) -> None:
    result = InsertResult(0, 0)
    for contract, rows in decode_batch(topic_of, batch, stats).items():
        # DuckDB is synchronous: run the insert off the event loop so heartbeats keep flowing.
        r = await asyncio.to_thread(
            store.insert_batch, contract, rows, topic_name=settings.topic(contract)
        )
        result += r
        stats.per_topic[contract] = stats.per_topic.get(contract, 0) + r.inserted
    stats.batches += 1
    stats.inserted += result.inserted
    stats.invalid += result.invalid


async def _caught_up(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
    for tp, end in targets.items():
        if await consumer.position(tp) < end:
            return False
    return True
