"""`streams.faust_internals`: the hand-stepped delivery behaves like an asyncio task, the stall
watch, the partitioner, and the guard on every Faust/aiokafka internal the module overrides.

    pytest tests/stream/test_faust_internals.py
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import faust
import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.faust_internals import StallWatch, _finish
from streams.partitioner import KeyPartitioner


def stepped(coro: Any) -> Any:
    """What the consumer does: one step by hand, then a task for the rest (if any)."""
    try:
        first = coro.send(None)
    except StopIteration as stop:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(stop.value)
        return fut
    return asyncio.ensure_future(_finish(coro, first))


async def test_a_delivery_that_never_waits_completes_on_the_first_step() -> None:
    log: list[str] = []

    async def deliver() -> str:
        log.append("in")
        return "done"

    coro = deliver()
    with pytest.raises(StopIteration):
        coro.send(None)
    assert log == ["in"]


async def test_waiting_on_futures_and_sleep_zero_resumes_with_their_results() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()

    async def deliver() -> int:
        await asyncio.sleep(0)
        got = await gate
        await asyncio.sleep(0.01)
        return got + 1

    task = stepped(deliver())
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result(41)
    assert await task == 42


async def test_an_exception_of_an_awaited_future_is_raised_inside_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []

    async def deliver() -> str:
        try:
            await gate
        except KeyError as exc:
            seen.append(str(exc))
            return "handled"
        return "not reached"

    task = stepped(deliver())
    gate.set_exception(KeyError("full"))
    assert await task == "handled" and seen == ["'full'"]


async def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    cleanup: list[str] = []

    async def deliver() -> None:
        try:
            await gate
        finally:
            cleanup.append("finally ran")

    task = stepped(deliver())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleanup == ["finally ran"] and gate.cancelled()


class FakeConsumer:
    """The few consumer attributes StallWatch reads, and a record of seeks."""

    def __init__(self, ends: dict[str, int]) -> None:
        self.ends = ends
        self.flow_active = True
        self._read_offset: dict[str, int | None] = {}
        self._committed_offset: dict[str, int | None] = {}
        self._paused_partitions: set[str] = set()
        self._buffered_partitions: set[str] = set()
        self.seeks = 0
        self.log = MagicMock()
        self.active: set[str] = set()
        self.sought: dict[str, int] = {}

    def _get_active_partitions(self) -> set[str]:
        return self.active

    def assignment(self) -> set[str]:
        return set(self.ends)

    async def highwaters(self, *tps: str) -> dict[str, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def seek(self, tp: str, offset: int) -> None:
        self.seeks += 1
        self.sought[tp] = offset

    async def earliest_offsets(self, *tps: str) -> dict[str, int]:
        return {tp: 0 for tp in tps}


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


async def test_stall_watch_seeks_back_only_a_partition_that_stopped_short_of_its_end() -> None:
    sales, scans = TP("pos.sales", 1), TP("backroom.scans", 0)
    # scans: 39 read, 40 committed, end 41: the last offset is a transaction marker, not a stall
    consumer = FakeConsumer({sales: 159, scans: 41})  # type: ignore[dict-item]
    consumer._read_offset = {sales: 76, scans: 39}  # type: ignore[dict-item]
    consumer._committed_offset = {sales: 78, scans: 40}  # type: ignore[dict-item]
    watch = StallWatch({"pos.sales", "backroom.scans"})
    assert await watch.check(consumer, busy=False) == []  # first look: nothing to compare with
    assert await watch.check(consumer, busy=True) == []  # a batch in flight: not stalled
    assert await watch.check(consumer, busy=False) == []
    consumer._buffered_partitions = {sales}  # type: ignore[arg-type]
    assert await watch.check(consumer, busy=False) == [sales]  # 76 twice, 159 on the broker
    assert consumer.sought == {sales: 78} and consumer.active == {sales} and not consumer._buffered_partitions
    consumer._read_offset[sales] = 100  # type: ignore[index]
    assert await watch.check(consumer, busy=False) == []  # moving again
    consumer._paused_partitions = {sales}  # type: ignore[arg-type]
    assert await watch.check(consumer, busy=False) == []  # paused on purpose
    assert consumer.seeks == 1


async def test_stall_watch_reads_a_partition_with_no_committed_offset_from_its_start() -> None:
    sales = TP("pos.sales", 2)
    consumer = FakeConsumer({sales: 120})  # type: ignore[dict-item]
    consumer._read_offset = {sales: None}  # type: ignore[dict-item]
    watch = StallWatch({"pos.sales"})
    await watch.check(consumer, busy=False)
    assert await watch.check(consumer, busy=False) == [sales]
    assert consumer.sought == {sales: 0}


def test_key_partitioner_matches_kafkas_default_and_stays_bounded() -> None:
    cached, default = KeyPartitioner(size=100), DefaultPartitioner()
    keys = [f"S{i % 50:03d}:SKU-{i:06d}".encode() for i in range(1000)]
    for parts in ([0, 1, 2, 3], list(range(12))):
        for k in keys + keys:  # the second pass is answered from the remembered hashes
            assert cached(k, parts, parts) == default(k, parts, parts)
    assert len(cached._hashes) <= 100
    assert cached(None, [0, 1, 2, 3], [2]) == 2  # no key: an available partition, as Kafka does


# --- the guard: Faust/aiokafka internals that streams/faust_internals.py overrides or relies on ----
# sha256 (first 16 hex digits) of `inspect.signature` + `inspect.getsource` of each, as installed
# at the versions pinned in pyproject.toml. A mismatch means the engine changed under the
# override: read the new source against streams/faust_internals.py (its docstring lists why each
# override exists), adapt the override, then update the digest here and the pin together.
GUARDED = {
    # overridden: copied and changed, or replaced
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "99950f336bed7375",
    "faust.transport.consumer:Consumer._drain_messages": "5ade1c6f7b679f3f",
    "faust.transport.consumer:Consumer._new_offset": "64996e5d3669963f",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": "2eb45a091fed6900",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.seek_to_committed": "1ef391bf519d8e58",
    # the disk store (KeyedRocksStore): a key's database from the key, not from the event
    "faust.stores.rocksdb:Store._get": "dc1cafcd0a595ce8",
    "faust.stores.rocksdb:Store._set": "cda8af789cc07b2a",
    "faust.stores.rocksdb:Store._del": "97ac6e11ba8a1677",
    "faust.stores.rocksdb:Store._contains": "22e480a78d09e94a",
    # mirrored: the bulk path and the fetch loop repeat what these do
    "faust.transport.consumer:Consumer.getmany": "eae7102256eb6fab",
    "faust.transport.consumer:Consumer._wait_next_records": "65bea944ebef4fde",
    "faust.transport.consumer:Consumer.ack": "6a7cade66f64f21d",
    "faust.transport.consumer:Consumer.perform_seek": "e2f1989d40fcd28d",
    "faust.transport.consumer:Consumer.on_buffer_full": "fe7a4ed48a9ef322",
    "faust.transport.consumer:Consumer.on_buffer_drop": "5b1898d88cb14e8e",
    # relied on: the attributes set after construction, and the seek that skips offset 0
    "aiokafka.consumer.consumer:AIOKafkaConsumer.__init__": "a7b8d1f63f97e257",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start": "134bb204815c87ee",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.seek_to_committed": "97b7edf45ebce18e",
    "faust.transport.producer:Producer.__init__": "06288f2cc81edea8",
    "faust.app.base:App._new_transport": "933b4067959a95d0",
    "faust.tables.base:Collection._new_store_by_url": "e4361868a2445fc6",
    "faust.tables.base:Collection._to_key": "f54e2c027eb12aa7",
    "faust.tables.base:Collection._to_value": "ffee10ea89a538dd",
    "faust.tables.table:Table.apply_changelog_batch": "bed75532b4b4a0ff",
    "faust.stores.memory:Store": "021ea70638b1c5f2",
    # the disk store: its options (popped from the table's), the partition databases it opens,
    # the persisted changelog offset the bulk path advances, and the key/value codecs
    "faust.stores.rocksdb:Store.__init__": "5e98424872368367",
    "faust.stores.rocksdb:Store._db_for_partition": "1b637faf77913b5d",
    "faust.stores.rocksdb:Store.set_persisted_offset": "a15a50b000de6eca",
    "faust.stores.rocksdb:Store.partition_path": "2141d440e22ab536",
    "faust.stores.base:Store._encode_key": "8e6ec60afe1a8f11",
    "faust.stores.base:Store._decode_value": "e4e822272df64b47",
    "faust.streams:Stream._enable_passive": "8f9ceb5438678c21",
    "faust.streams:Stream.add_processor": "e95c050b1b6cf60b",
}


def _digest(obj: Any) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = ""
    return hashlib.sha256((sig + "\n" + inspect.getsource(obj)).encode()).hexdigest()[:16]


def _resolve(name: str) -> Any:
    module, _, path = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def test_the_engine_internals_we_override_are_the_ones_we_read() -> None:
    changed = {name: _digest(_resolve(name)) for name, pinned in GUARDED.items()
               if _digest(_resolve(name)) != pinned}
    assert not changed, (
        "Faust/aiokafka internals changed under streams/faust_internals.py (new digests: "
        f"{changed}); installed faust-streaming {importlib.metadata.version('faust-streaming')}, "
        f"aiokafka {importlib.metadata.version('aiokafka')}. Re-read each against the override "
        "before updating the digest and the pins in pyproject.toml."
    )


def test_the_versions_installed_are_the_pinned_ones() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    for dist in ("faust-streaming", "aiokafka", "mode-streaming"):
        assert f'"{dist}=={importlib.metadata.version(dist)}"' in pyproject, dist


def test_the_transport_and_store_come_from_fausts_registries(settings_factory: Any) -> None:
    from faust.transport.producer import ProducerBuffer

    from backroom.settings import Settings
    from streams import faust_internals as fi
    from streams.app import create_app

    assert faust.transport.by_url("backroom://localhost:9092") is fi.Transport
    assert faust.stores.by_url("backroom-memory://") is fi.KeepingMemoryStore
    settings: Settings = settings_factory(kafka_bootstrap="127.0.0.1:1", store="memory://", batch_size=500)
    app = create_app(settings)
    app.finalize()
    assert type(app.transport) is fi.Transport and type(app.consumer) is fi.Consumer
    assert type(app.producer) is fi.Producer and app.producer.buffer.max_messages == 2000
    assert ProducerBuffer.max_messages == 100  # the buffer of this producer, not every producer
    tables = app.backroom_tables  # type: ignore[attr-defined]
    assert all(type(t.data) is fi.KeepingMemoryStore for t in tables.values())
    # Only the versioned tables name the store: the app's own store stays Faust's.
    assert str(app.conf.store).startswith("memory:")


def test_the_disk_store_comes_from_the_registry_and_keys_pick_their_partition(settings_factory: Any) -> None:
    pytest.importorskip("rocksdict")
    from faust.stores.rocksdb import Store as FaustRocksStore

    from backroom.settings import Settings
    from streams import faust_internals as fi
    from streams.app import create_app
    from streams.partitioner import KeyPartitioner
    from streams.rocksdb_store import RocksStore

    assert faust.stores.by_url(fi.store_url("rocksdb://", "inventory") or "") is RocksStore
    settings: Settings = settings_factory(kafka_bootstrap="127.0.0.1:1", store="rocksdb://",
                                          store_cache_mb=64, partitions=4)
    app = create_app(settings)
    app.finalize()
    tables = app.backroom_tables  # type: ignore[attr-defined]
    inventory = tables["inventory"].data
    assert type(inventory) is RocksStore and type(tables["alert_books"].data) is RocksStore
    assert type(tables["catalog"].data) is FaustRocksStore  # written inside events only
    # The read cache is the table's, shared out over its partitions (Faust's: 2 GiB each).
    assert inventory.rocksdb_options.block_cache_size == 16 * 1024 * 1024
    # Each table's own files, named like Faust's own rocksdb:// names them.
    assert inventory.partition_path(1).name == "inventory-1.db"
    assert tables["alert_books"].data.partition_path(0).name == "alert-books-0.db"
    # A key's partition is the one the producer's partitioner gives its changelog record.
    keys = [f"S{i}:SKU-{i}".encode() for i in range(40)]
    parts = [KeyPartitioner()(k, [0, 1, 2, 3], [0, 1, 2, 3]) for k in keys]
    assert [inventory.partition_of(k) for k in keys] == parts and len(set(parts)) == 4
    # Outside any Faust event (the bulk path's case): written to and read from that partition's
    # database only; a miss is None, not a KeyError.
    inventory["S1:SKU-1"] = b"\x02state"
    assert inventory.get("S1:SKU-1") == b"\x02state" and inventory.get("S9:none") is None
    p = inventory.partition_of(b"S1:SKU-1")
    assert inventory.db_for_partition(p).get(b"S1:SKU-1") == b"\x02state"
    assert all(inventory.db_for_partition(q).get(b"S1:SKU-1") is None for q in range(4) if q != p)
    del inventory["S1:SKU-1"]
    assert "S1:SKU-1" not in inventory


async def test_a_partition_with_nothing_committed_is_sought_to_its_start() -> None:
    # aiokafka's seek_to_committed leaves a partition committed at 0 or not at all where it is
    # (past any records the fetch loop dropped): the stall StallWatch used to repair.
    from streams.faust_internals import ConsumerThread

    sales0, sales1, sales2 = TP("pos.sales", 0), TP("pos.sales", 1), TP("pos.sales", 2)
    changelog = TP("app-inventory-changelog", 0)
    from_start: list[Any] = []

    class AIOKafka:
        async def seek_to_committed(self) -> dict[Any, int | None]:
            return {sales0: 40, sales1: None, sales2: 0, changelog: None}

        async def seek_to_beginning(self, *tps: Any) -> None:
            from_start.extend(tps)

    thread = MagicMock()
    thread._ensure_consumer.return_value = AIOKafka()
    thread.app.tables.changelog_topics = {"app-inventory-changelog"}
    committed = await ConsumerThread._seek_committed_or_start(thread)
    assert committed[sales0] == 40 and from_start == [sales1, sales2]  # changelogs: recovery's
