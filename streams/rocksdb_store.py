"""The disk-backed table store: Faust's RocksDB store (rocksdict driver), keyed like its topics.

    BACKROOM_STORE=rocksdb:// BACKROOM_STORE_CACHE_MB=256 backroom worker

`pip install 'backroom[rocksdb]'` (rocksdict, ~30 MB wheel). Selected by the store URL; the
worker's tables build it (`streams.app.VersionedTable`). docs/operations.md says when to pick
it over the memory store.

Faust's store finds a key's partition database from the event being processed, or by probing
every partition's database. Backroom's tables use the producer's partitioner (the changelog
record of a key goes to the partition of its source events), and the worker writes them in bulk,
outside any Faust event. So this store computes the partition from the key, as the partitioner
does (murmur2 of the raw key): one database read per get, and writes work from the bulk path.
Everything else is Faust's: one RocksDB per partition under the worker's data dir, the changelog
offset persisted in it (a restarted worker replays only the changelog written since), the
recovery and rebalance protocol.

The read cache: RocksDB's block cache, `store_cache_mb` in all, shared out over the table's
partition databases (Faust's default is 2 GiB per database); size it to the working set (the
keys touched within a few batches, ~1.3 KB each), not to the whole table. Decoded states of
the keys written last stay in the processor's `LiveStates` on top of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from aiokafka.partitioner import murmur2
from faust.stores.rocksdb import Store
from faust.types import TP

MB = 1024 * 1024


class RocksStore(Store):
    """`faust.stores.rocksdb.Store` with a key's partition computed from the key."""

    def __init__(self, *args: Any, cache_mb: int = 256, **kwargs: Any) -> None:
        options = dict(kwargs.pop("options", None) or {})
        options.setdefault("driver", "rocksdict")
        super().__init__(*args, options=options, **kwargs)
        partitions = max(1, self.table.partitions or 1)
        self._partitions = partitions
        self._all = list(range(partitions))
        self._persisted: dict[TP, int] = {}
        self.rocksdb_options.block_cache_size = max(1, cache_mb // partitions) * MB
        # Compressed blocks are a second cache in python-rocksdb only; rocksdict ignores it.
        self.rocksdb_options.block_cache_compressed_size = 0

    def partition_of(self, key: bytes) -> int:
        # The producer's partitioner (streams.transport.KeyPartitioner: Kafka's murmur2, with
        # the hashes it computed for the changelog records remembered).
        partitioner = self.table.app.conf.producer_partitioner
        if callable(partitioner):
            return int(partitioner(key, self._all, self._all))  # type: ignore[call-arg]
        return (murmur2(key) & 0x7FFFFFFF) % self._partitions

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = self.partition_of(key)
        self._db_for_partition(partition).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        value = self._db_for_partition(self.partition_of(key)).get(key)
        return value  # type: ignore[no-any-return]

    def get(self, key: Any, default: Any = None) -> Any:
        # Mapping.get is a try/except around __getitem__: a miss (most keys of a key-diverse
        # batch have no alert book) raised and caught a KeyError each.
        value = self._get(self._encode_key(key))
        return default if value is None else self._decode_value(value)

    def _del(self, key: bytes) -> None:
        self._db_for_partition(self.partition_of(key)).delete(key)

    async def write_bulk(self, values: Mapping[str, bytes]) -> None:
        """Set raw-keyed values and send their changelog records straight to the producer, as
        `streams.app.write_values` does for the memory store: Faust's per-key path (a
        FutureMessage, its buffer, a callback, one RocksDB put each) cost about as much as the
        inventory logic of a key. One RocksDB write batch per partition; the changelog offset
        each database has persisted is advanced when its records are acknowledged, as Faust's
        own callback does, so a restart replays only what came after."""
        import rocksdict

        table = self.table
        name = table.changelog_topic.get_topic_name()
        batches: dict[int, Any] = defaultdict(lambda: rocksdict.WriteBatch(raw_mode=True))
        encoded = [(key.encode(), value) for key, value in values.items()]
        for kb, value in encoded:
            batches[self.partition_of(kb)].put(kb, value)
        for partition, batch in batches.items():
            self._db_for_partition(partition).write(batch)
        send = table.app.producer.send
        for kb, value in encoded:
            fut = await send(name, kb, value, partition=None, timestamp=None, headers=None)
            fut.add_done_callback(self._persist_offset)  # type: ignore[attr-defined]

    def _persist_offset(self, fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return  # not written: the batch is retried, and its records sent again
        meta = fut.result()
        tp = TP(meta.topic, meta.partition)
        if meta.offset > self._persisted.get(tp, -1):
            self._persisted[tp] = meta.offset
            self.set_persisted_offset(tp, meta.offset)

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def disk_bytes(self) -> int:
        """Bytes of this table's RocksDB files under the data dir (all partitions)."""
        total = 0
        for partition in range(self._partitions):
            path = self.partition_path(partition)
            if path.exists():
                total += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return total
