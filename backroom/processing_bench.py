"""Cost of the worker's inventory and alert logic per event, without Kafka.

Run: `python -m backroom.processing_bench --events 100000 --keys 200 [--batch 2500]
[--gc-threshold 700]`. Prints one JSON object: events, keys, events_per_s and µs per event
for each phase: `process` (`InventoryProcessor.process`: decode, validate, dedup, apply,
demand buckets, projections), `store` (table values as JSON bytes), `alerts` (rule evaluation
on the published states, records and changed books serialised). Sales are spread round-robin
over `keys` store×SKU keys, one second of event time apart, in batches of `batch` as the
worker's bulk path hands them over; tables are plain dicts. `--keys 100000` is the soak's
worst case (every event in a batch a different key); `--gc-threshold` sets the collector's
youngest-generation threshold (the worker uses `streams.runtime.YOUNG_THRESHOLD`).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from backroom.processing import AlertProcessor, InventoryProcessor, RawMessage
from backroom.settings import Settings

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def sales(events: int, keys: int, partitions: int = 4) -> list[RawMessage]:
    out = []
    for i in range(events):
        k = i % keys
        store, sku = f"S{k % 50:02d}", f"SKU-{k:06d}"
        ts = (T0 + timedelta(seconds=i)).isoformat()
        value = orjson.dumps({"event_id": f"e-{i}", "ts": ts, "store_id": store, "sku": sku, "qty": 1})
        out.append(RawMessage("pos.sales", k % partitions, i, f"{store}:{sku}".encode(), value))
    return out


def run(events: int, keys: int, batch: int) -> dict[str, Any]:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    inventory, alerting = InventoryProcessor(settings), AlertProcessor(settings)
    table: dict[str, bytes] = {}
    books: dict[str, Any] = {}
    messages = sales(events, keys)

    def load(key: str) -> Any:
        value = table.get(key)
        return orjson.loads(value) if value is not None else None

    t_process = t_store = t_alerts = 0.0
    start = time.perf_counter()
    for i in range(0, events, batch):
        a = time.perf_counter()
        result = inventory.process(messages[i : i + batch], load, lambda _: None)
        b = time.perf_counter()
        for key, value in result.states.items():
            table[key] = bytes(memoryview(orjson.dumps(value)))
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
        "events": events, "keys": keys, "batch": batch, "gc_threshold": gc.get_threshold()[0],
        "events_per_s": round(events / elapsed),
        "us_per_event": {"process": round(t_process * us, 1), "store": round(t_store * us, 1),
                         "alerts": round(t_alerts * us, 1)},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2500)
    ap.add_argument("--gc-threshold", type=int, default=None)
    args = ap.parse_args()
    if args.gc_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(args.gc_threshold, gen1, gen2)
    print(json.dumps(run(args.events, args.keys, args.batch)))


if __name__ == "__main__":
    main()
