"""The disk-backed table store: Faust's RocksDB store (rocksdict driver), keyed like its topics.

    BACKROOM_STORE=rocksdb:// BACKROOM_STORE_CACHE_MB=256 backroom worker

`pip install 'backroom[rocksdb]'` (rocksdict, ~30 MB wheel). Selected by the store URL: the
worker's versioned tables name `backroom-rocksdb://` from Faust's store registry
(`streams.faust_internals.store_url`, `streams.tables.make_tables`). docs/operations.md says
when to pick it over the memory store.

Faust's store finds a key's partition database from the event being processed, or by probing
every partition's database. Backroom's tables use the producer's partitioner (the changelog
record of a key goes to the partition of its source events), and the worker writes them in bulk,
outside any Faust event. So this store computes the partition from the key, as the partitioner
does (`streams.faust_internals.KeyedRocksStore`, where the Faust internals it overrides are):
one database read per get, and writes work from the bulk path. Everything else is Faust's: one
RocksDB per partition under the worker's data dir, the changelog offset persisted in it (a
restarted worker replays only the changelog written since), the recovery and rebalance protocol.

The read cache: RocksDB's block cache, `BACKROOM_STORE_CACHE_MB` in all, shared out over the
table's partition databases (Faust's default is 2 GiB per database); size it to the working set
(the keys touched within a few batches, ~1.3 KB each), not to the whole table. Decoded states of
the keys written last stay in the processor's `LiveStates` on top of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from faust.types import TP

from streams.faust_internals import KeyedRocksStore


class RocksStore(KeyedRocksStore):
    """The keyed RocksDB store with the bulk write path (`write_bulk`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.persisted: dict[TP, int] = {}  # the highest changelog offset acknowledged, per partition

    async def write_bulk(self, values: Mapping[str, bytes]) -> None:
        """Set raw-keyed values and send their changelog records straight to the producer, as
        `streams.tables.write_values` does for the memory store: Faust's per-key path (a
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
        # All partitions' batches with no await in between: another agent's read-modify-write
        # of the same keys sees all of this batch or none of it.
        for partition, batch in batches.items():
            self.db_for_partition(partition).write(batch)
        send = table.app.producer.send
        for kb, value in encoded:
            fut: Any = await send(name, kb, value, partition=None, timestamp=None, headers=None)
            fut.add_done_callback(self.persist_offset)

    def persist_offset(self, fut: Any) -> None:
        """A changelog record's send callback: advance its partition's persisted offset."""
        if fut.cancelled() or fut.exception() is not None:
            return  # not written: the batch is retried, and its records sent again
        meta = fut.result()
        tp = TP(meta.topic, meta.partition)
        if meta.offset > self.persisted.get(tp, -1):
            self.persisted[tp] = meta.offset
            self.set_persisted_offset(tp, meta.offset)

    def disk_bytes(self) -> int:
        """Bytes of this table's RocksDB files under the data dir (all partitions)."""
        total = 0
        for partition in range(self.partitions):
            path = self.partition_path(partition)
            if path.exists():
                total += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return total
