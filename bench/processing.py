"""Cost of the worker's inventory and alert logic per event, without Kafka.

Run: `python -m bench.processing --events 100000 --keys 200 [--batch 2500]
[--gc-threshold 700] [--fill 64]`. Prints one JSON object: events, keys, events_per_s and µs per event
for each phase: `process` (`InventoryProcessor.process`: decode, validate, dedup, apply,
demand buckets, projections, table values as binary records), `store` (setting them in the table,
a dict of bytes as the worker's memory store), `alerts` (rule evaluation on the published
states, records and changed books serialised). Sales are spread round-robin
over `keys` store×SKU keys, one second of event time apart, in batches of `batch` as the
worker's bulk path hands them over; tables are plain dicts. `--keys 100000` is the soak's
worst case (every event in a batch a different key); `--gc-threshold` sets the collector's
youngest-generation threshold (the worker uses `streams.runtime.YOUNG_THRESHOLD`). `--fill N`
first brings every key to the size the soak runs at (`bench soak --fill`): a shelf count and
N − 1 sales over the 80 minutes before the measured events (untimed), so each value carries a
full dedup window, its recent deltas and a first demand model; `--keys 5000 --fill 64` is then
the soak's per-event cost without Kafka (the measured events then span 10 minutes of event
time, as the soak's clock, instead of a second each).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from backroom.processing import AlertProcessor, InventoryProcessor, RawMessage
from backroom.settings import Settings

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def sales(events: int, keys: int, partitions: int = 4, first_offset: int = 0,
          step: timedelta = timedelta(seconds=1)) -> list[RawMessage]:
    out = []
    for i in range(events):
        k = i % keys
        store, sku = f"S{k % 50:02d}", f"SKU-{k:06d}"
        ts = (T0 + step * i).isoformat()
        value = exact(orjson.dumps({"event_id": f"e-{i}", "ts": ts, "store_id": store, "sku": sku, "qty": 1}))
        out.append(RawMessage("pos.sales", k % partitions, first_offset + i, f"{store}:{sku}".encode(), value))
    return out


FILL_SPAN = timedelta(minutes=80)  # the event time a pre-load spreads over (`bench soak` too)


def steady_state_events(store: str, sku: str, fill: int, end: datetime, id_prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """`fill` events that bring one key to its steady-state size, as (contract topic, event):
    a shelf count at `end` − FILL_SPAN, then `fill` − 1 sales spread up to `end`. A full dedup
    window, its recent deltas and (the first hour closing in it) a first demand model. The soak
    (`bench/soak.py`) pre-loads with the same events."""
    start, step = end - FILL_SPAN, FILL_SPAN / fill
    base = {"store_id": store, "sku": sku}
    out: list[tuple[str, dict[str, Any]]] = [("backroom.scans", {
        "event_id": f"{id_prefix}-{store}:{sku}", "ts": start.isoformat(), **base, "kind": "count",
        "qty": 40 + fill, "location": "shelf"})]
    for j in range(1, fill):
        out.append(("pos.sales", {"event_id": f"{id_prefix}-{store}:{sku}-{j}",
                                  "ts": (start + step * j).isoformat(), **base, "qty": 1}))
    return out


def exact(buf: bytes) -> bytes:
    """`buf` copied to exactly its size. A bytes object from orjson.dumps keeps orjson's whole
    output buffer (~4 KB for a 150-byte event): holding the 2.56M pre-load messages of
    `--keys 40000 --fill 64` at once that way was the 11 GB this benchmark once peaked at."""
    return bytes(memoryview(buf))


def preload(keys: int, fill: int, partitions: int = 4) -> Iterator[list[RawMessage]]:
    """Per key, the steady-state events up to T0, as the worker's raw messages (one key's at a
    time: nothing of a key's pre-load outlives its batch)."""
    for k in range(keys):
        store, sku = f"S{k % 50:02d}", f"SKU-{k:06d}"
        key = f"{store}:{sku}".encode()
        yield [RawMessage(topic, k % partitions, k * fill + j, key, exact(orjson.dumps(event)))
               for j, (topic, event) in enumerate(steady_state_events(store, sku, fill, T0, "pre"))]


def run(events: int, keys: int, batch: int, fill: int = 0) -> dict[str, Any]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    inventory, alerting = InventoryProcessor(settings), AlertProcessor(settings)
    table: dict[str, bytes] = {}
    books: dict[str, Any] = {}

    load = table.get  # the stored bytes, as the worker's reader hands them over

    if fill > 0:
        for msgs in preload(keys, fill):
            result = inventory.process(msgs, load, lambda _: None)
            table.update(result.values)
            books.update(alerting.on_states(result.published, books.get).books)
    # After a pre-load the events span 10 minutes of event time, as in the soak (event time
    # with the wall clock): no hour closes, which would add a model update per key and hour.
    step = timedelta(minutes=10) / events if fill > 0 else timedelta(seconds=1)
    messages = sales(events, keys, first_offset=keys * fill + fill, step=step)

    t_process = t_store = t_alerts = 0.0
    applied = 0
    start = time.perf_counter()
    for i in range(0, events, batch):
        a = time.perf_counter()
        result = inventory.process(messages[i : i + batch], load, lambda _: None)
        applied += result.applied
        b = time.perf_counter()
        table.update(result.values)
        c = time.perf_counter()
        alerts = alerting.on_states(result.published, books.get)
        books.update(alerts.books)
        for rec in (*result.published, *alerts.alerts):
            rec.to_json()
        for value in alerts.books.values():
            orjson.dumps(value)
        d = time.perf_counter()
        t_process, t_store, t_alerts = t_process + b - a, t_store + c - b, t_alerts + d - c
    elapsed = time.perf_counter() - start
    us = 1e6 / events
    return {
        "events": events, "applied": applied, "keys": keys, "batch": batch, "fill": fill, "gc_threshold": gc.get_threshold()[0],
        "value_bytes": round(sum(map(len, table.values())) / max(len(table), 1)),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "events_per_s": round(events / elapsed),
        "us_per_event": {"process": round(t_process * us, 1), "store": round(t_store * us, 1),
                         "alerts": round(t_alerts * us, 1)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2500)
    ap.add_argument("--gc-threshold", type=int, default=None)
    ap.add_argument("--fill", type=int, default=0, help="pre-load each key to the soak's size (64)")
    args = ap.parse_args()
    if args.gc_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(args.gc_threshold, gen1, gen2)
    print(json.dumps(run(args.events, args.keys, args.batch, args.fill)))


if __name__ == "__main__":
    main()
