"""Replay processed history (from `backroom clean`) into the contract topics in event-time order.

Run: `backroom replay data/processed/products.parquet data/processed/sales.parquet \\
      data/processed/scans.parquet --speed 3600` (one event-time hour per second; 0 = flat out).

Catalog files go first (they have no event time), then every event file is merged by `ts`, so
sales and scans interleave as they happened. Keys are `"{store_id}:{sku}"` (`"*:{sku}"` for
catalog rows that apply to every store); values are the records' `to_json()`; the producer uses
acks=all and idempotence. Replaying the same files twice produces the same event ids, which the
worker and the history sink absorb.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from backroom import records
from backroom.settings import Settings

# Columns read per kind, cast so CSV and Parquet give the types the strict records expect.
_SELECT = {
    "sales": """CAST(event_id AS VARCHAR) AS event_id, CAST(ts AS TIMESTAMPTZ) AS ts,
        CAST(store_id AS VARCHAR) AS store_id, CAST(sku AS VARCHAR) AS sku, CAST(qty AS INTEGER) AS qty,
        CAST(unit_price AS DOUBLE) AS unit_price, CAST(register_id AS VARCHAR) AS register_id""",
    "scans": """CAST(event_id AS VARCHAR) AS event_id, CAST(ts AS TIMESTAMPTZ) AS ts,
        CAST(store_id AS VARCHAR) AS store_id, CAST(sku AS VARCHAR) AS sku, CAST(kind AS VARCHAR) AS kind,
        CAST(qty AS INTEGER) AS qty, CAST(location AS VARCHAR) AS location""",
    "catalog": """CAST(store_id AS VARCHAR) AS store_id, CAST(sku AS VARCHAR) AS sku,
        CAST(name AS VARCHAR) AS name, CAST(category AS VARCHAR) AS category,
        CAST(shelf_capacity AS INTEGER) AS shelf_capacity, CAST(min_shelf_qty AS INTEGER) AS min_shelf_qty,
        CAST(lead_time_hours AS DOUBLE) AS lead_time_hours, CAST(case_pack AS INTEGER) AS case_pack,
        CAST(unit_cost AS DOUBLE) AS unit_cost, CAST(aisle AS VARCHAR) AS aisle""",
}
TOPIC = {"sales": "pos.sales", "scans": "backroom.scans", "catalog": "catalog.skus"}
RECORD: dict[str, type[records.Record]] = {
    "sales": records.Sale, "scans": records.Scan, "catalog": records.CatalogSku,
}


class ReplayError(ValueError):
    pass


@dataclass
class ReplayStats:
    produced: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.produced.values())


@dataclass(order=True)
class Event:
    ts: datetime
    seq: int
    kind: str = field(compare=False)
    row: dict[str, Any] = field(compare=False)


def _reader(path: Path) -> str:
    lit = "'" + str(path).replace("'", "''") + "'"
    return f"read_parquet({lit})" if path.suffix == ".parquet" else f"read_csv({lit}, header = true)"


def detect_kind(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_reader(path)}").fetchall()}
    if {"event_id", "ts", "kind", "qty"} <= cols:
        return "scans"
    if {"event_id", "ts", "qty"} <= cols:
        return "sales"
    if {"sku", "name", "category"} <= cols:
        return "catalog"
    raise ReplayError(f"{path}: not a processed sales, scans or catalog file (columns: {sorted(cols)})")


def _rows(con: duckdb.DuckDBPyConnection, path: Path, kind: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
    order = "ORDER BY ts, event_id" if kind != "catalog" else ""
    cur = con.cursor().execute(f"SELECT {_SELECT[kind]} FROM {_reader(path)} {order}")
    cols = [d[0] for d in cur.description or []]
    while chunk := cur.fetchmany(batch):
        for r in chunk:
            yield {c: v for c, v in zip(cols, r, strict=True) if v is not None}


def iter_events(paths: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, row) for every row: catalog rows first, then all events merged by event time."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        kinds = [(p, detect_kind(con, p)) for p in paths]
        for p, kind in kinds:
            if kind == "catalog":
                for row in _rows(con, p, kind):
                    yield kind, row
        seq = iter(range(1 << 62))

        def events(p: Path, kind: str) -> Iterator[Event]:
            # A function, not a generator expression: each stream keeps its own `kind`.
            for row in _rows(con, p, kind):
                yield Event(row["ts"], next(seq), kind, row)

        streams = [events(p, kind) for p, kind in kinds if kind != "catalog"]
        for ev in heapq.merge(*streams):
            yield ev.kind, ev.row
    finally:
        con.close()


def to_message(kind: str, row: dict[str, Any]) -> tuple[str, str, bytes]:
    """(contract topic, key, value) for one processed row; raises ValidationError if invalid."""
    if kind == "catalog":
        store = row.pop("store_id", None) or "*"
        rec = RECORD[kind].model_validate(row)
        return TOPIC[kind], f"{store}:{row['sku']}", rec.to_json()
    rec = RECORD[kind].model_validate(row)
    return TOPIC[kind], records.sku_key(row["store_id"], row["sku"]), rec.to_json()


Send = Callable[[str, str, bytes], Awaitable[Any]]


async def replay(
    paths: list[Path],
    settings: Settings,
    speed: float = 0.0,
    *,
    send: Send | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ReplayStats:
    """Produce every row of `paths`; `speed` = event-time seconds per wall second (0 = flat out).

    `send(topic, key, value)` defaults to an idempotent AIOKafkaProducer on `settings.bootstrap`
    (tests pass their own).
    """
    for p in paths:
        if not p.is_file():
            raise ReplayError(f"{p}: no such file")
    if speed < 0:
        raise ReplayError("speed must be >= 0")
    stats = ReplayStats()
    producer = None
    pending: list[Any] = []
    if send is None:
        from producers.kafka import make_producer

        producer = make_producer(settings)
        await producer.start()

        async def kafka_send(topic: str, key: str, value: bytes) -> Any:
            assert producer is not None
            return await producer.send(topic, value=value, key=key.encode())

        send = kafka_send
    started = time.monotonic()
    t0: datetime | None = None
    try:
        for kind, row in iter_events(paths):
            ts = row.get("ts")
            if speed > 0 and ts is not None:
                t0 = t0 or ts
                due = (ts - t0).total_seconds() / speed - (time.monotonic() - started)
                if due > 0:
                    await sleep(due)
            try:
                topic, key, value = to_message(kind, dict(row))
            except ValidationError:
                stats.skipped += 1
                continue
            result = await send(settings.topic(topic), key, value)
            if isinstance(result, asyncio.Future):
                pending.append(result)
                if len(pending) >= 5000:  # bound memory; acks arrive in batches anyway
                    await asyncio.gather(*pending)
                    pending.clear()
            stats.produced[topic] = stats.produced.get(topic, 0) + 1
            if ts is not None:
                iso = ts.isoformat().replace("+00:00", "Z")
                stats.first_ts = stats.first_ts or iso
                stats.last_ts = iso
        if pending:
            await asyncio.gather(*pending)
        if producer is not None:
            await producer.flush()
    finally:
        if producer is not None:
            await producer.stop()
    stats.seconds = round(time.monotonic() - started, 3)
    return stats
