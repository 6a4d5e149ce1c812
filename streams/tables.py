"""The worker's tables: changelog-backed, keyed `"{store_id}:{sku}"` as raw UTF-8.

    tables = make_tables(app, settings)        # streams/app.py:create_app
    get = reader(tables.inventory)             # the stored value of a key, or None
    await write_values(tables.inventory, {"S1:A": b"..."})

`use_partitioner=True` with raw keys puts each key's changelog record on the partition of its
source events (murmur2 on the same bytes), so a restarted or rebalanced worker recovers exactly
the keys it owns. On a memory store the tables use `KeepingMemoryStore`
(streams/faust_internals.py), on `rocksdb://` the disk store keyed like its topics
(streams/rocksdb_store.py), both named through Faust's store registry (`store=`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
import orjson

from backroom.settings import Settings
from backroom.state_codec import value_version
from streams.faust_internals import KeepingMemoryStore, memory_store_url, store_url


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

    version_field = "version"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, key_type=str, **kwargs)
        # Changelog keys as raw UTF-8, like the source events' keys, so that the partitioner
        # puts a key's changelog record in the partition of its source events: the partition
        # whose owner recovers it. Faust derives JSON for str keys ('"S1:A"' hashes elsewhere),
        # which left a restarted worker of two without the state of about half its keys.
        self.key_serializer = "raw"

    def _version(self, value: Any) -> int | None:
        # Inventory values are binary states (backroom.state_codec), the other tables' JSON.
        version = value_version(value)
        if version is None:
            as_dict = _as_dict(value)
            version = None if as_dict is None else as_dict.get(self.version_field, -1)
        return version

    def apply_changelog_batch(self, batch: Any) -> None:
        # Keys are plain str and values as stored (raw keys, no value conversion), so the
        # events' own key and value are what the store holds.
        keep = []
        for event in batch:
            value = event.message.value
            if value is not None:
                current = self._version(self.data.get(event.key))
                if current is not None:
                    incoming = self._version(event.value)
                    if incoming is not None and current > incoming:
                        continue
            keep.append(event)
        super().apply_changelog_batch(keep)


class VersionedBookTable(VersionedTable):
    version_field = "last_version"


@dataclass
class Tables:
    inventory: faust.Table
    alert_books: faust.Table
    catalog: faust.Table
    planograms: faust.Table

    def by_name(self) -> dict[str, faust.Table]:
        return {"inventory": self.inventory, "alert_books": self.alert_books,
                "catalog": self.catalog, "planograms": self.planograms}


def make_tables(app: faust.App, settings: Settings) -> Tables:
    def placed(name: str) -> dict[str, Any]:
        # Table `name`, its store from Faust's registry and the disk store's read cache
        # (`BACKROOM_STORE_CACHE_MB` per table; a fresh dict each: Faust's RocksDB store pops
        # from a table's options).
        on_disk = settings.store.startswith("rocksdb:")
        return dict(name=name, store=store_url(settings.store, name),
                    options={"cache_mb": settings.store_cache_mb} if on_disk else None)

    # Keys as raw UTF-8 so the producer partitioner hashes the same bytes as the source events.
    schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    # Inventory values are kept as their bytes (the changelog format, a binary record:
    # backroom/state_codec.py): one bytes object per key instead of a tree of objects. (Faust
    # picks a table's serializer from `value_type`, not from its schema.)
    raw_schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="raw")
    common: dict[str, Any] = dict(default=None, partitions=settings.partitions, use_partitioner=True,
                                  beacon=app.tables.beacon)

    def add(table: faust.Table) -> faust.Table:
        return cast(faust.Table, app.tables.add(table))

    # Added in this order (recovery goes through the tables in it).
    inventory = add(VersionedTable(
        app, **placed("inventory"), schema=raw_schema, value_type=bytes, **common,
        help="SkuState per store×SKU: quantities, demand buckets, recent event ids",
    ))
    books = add(VersionedBookTable(
        app, **placed("alert-books"), schema=schema, **common,
        help="open alerts and rule memory per store×SKU",
    ))
    # Every worker needs every SKU's master data (a "*:sku" entry applies to all stores). Written
    # by its agent inside Faust events only: on disk, Faust's own RocksDB store (the app's).
    catalog = app.GlobalTable(
        "catalog", default=None, schema=schema, partitions=1, store=memory_store_url(settings.store),
        recovery_buffer_size=1, use_partitioner=True, help="catalog.skus, validated",
    )
    planograms = add(VersionedTable(
        app, **placed("planograms"), schema=schema, **common,
        help="catalog.planograms per store:camera (co-partitioned with camera.frames)",
    ))
    return Tables(inventory=inventory, alert_books=books, catalog=cast(faust.Table, catalog),
                  planograms=planograms)


def reader(table: faust.Table) -> Callable[[str], Any]:
    """The stored value of a key, or None. `Table.get` on a missing key raises and catches a
    KeyError inside Faust, and most catalog lookups (store-specific entry first) miss; the store
    is looked up per call, since it is opened when the worker starts."""

    def get(key: str) -> Any:
        data = table.data
        return data.get_raw(key) if isinstance(data, KeepingMemoryStore) else data.get(key)

    return get


async def write_values(table: faust.Table, values: Mapping[str, bytes]) -> None:
    """Set keys of a table kept as raw bytes, with their changelog records sent straight to the
    producer: Faust's per-key path (a FutureMessage, its buffer, a callback) cost as much as the
    inventory logic for a key. The records are the ones Faust would send, on the same
    partitions. The disk store writes its own (`RocksStore.write_bulk`: one RocksDB batch per
    partition, its persisted changelog offsets advanced as the records are acknowledged); any
    other store goes through Faust."""
    data = table.data
    write_bulk = getattr(data, "write_bulk", None)  # streams.rocksdb_store.RocksStore
    if write_bulk is not None:
        await write_bulk(values)
        return
    if not isinstance(data, KeepingMemoryStore):
        for key, value in values.items():
            table[key] = value
        return
    # All values first, with no await in between: another agent's read-modify-write of the same
    # keys must see all of this batch or none of it (a record sent out of order between two
    # writers is settled by the version on recovery, see VersionedTable).
    data.put_raw(values)
    send, name = table.app.producer.send, table.changelog_topic.get_topic_name()
    for key, value in values.items():
        await send(name, key.encode(), value, partition=None, timestamp=None, headers=None)


async def write_books(table: faust.Table, books: Mapping[str, Any]) -> None:
    """Set alert books (JSON values): through Faust, or the disk store's bulk path (as
    `write_values`; a batch of key-diverse events writes a book for most of its keys)."""
    write_bulk = getattr(table.data, "write_bulk", None)  # streams.rocksdb_store.RocksStore
    if write_bulk is not None:
        await write_bulk({key: orjson.dumps(value) for key, value in books.items()})
        return
    for key, value in books.items():
        table[key] = value
