"""`backroom bench pipeline --json`: worker throughput against raw consume, and latency.

    backroom broker start && backroom bench pipeline --events 200000 --rate 2000 --json

In one run, on a fresh topic prefix: (1) pre-load N POS sales; (2) time a plain aiokafka
consumer reading them (the raw ceiling); (3) time a no-op Faust app batching them the same way
(`bench/noop.py`: Faust's own ceiling) and the worker's own ingest path with no logic
(`--bulk`: the ceiling of any worker on this consumer); (4) start `backroom worker` and time it from its first
to its last inventory.state record for those events; (5) produce at a fixed rate and measure,
per event, produce → the first inventory.state that includes it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from rich.console import Console

from backroom.settings import Settings
from producers.kafka import make_consumer, make_producer
from streams.topics import delete_run_topics, ensure_topics

console = Console(stderr=True)
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@dataclass
class BenchConfig:
    events: int = 200_000
    keys: int = 200
    rate: float = 2000.0
    latency_seconds: float = 20.0
    # Produced at the rate but not scored: the worker has just drained the pre-load, and the
    # figure is meant for steady state at the rate, not for the tail of that backlog.
    warmup_seconds: float = 5.0
    keep_topics: bool = False  # leave the run's topics on the broker (they are deleted otherwise)


def _sale(i: int, key_index: int, run: str, ts: datetime) -> tuple[bytes, bytes, str]:
    store, sku = f"S{key_index % 10:02d}", f"SKU-{key_index:05d}"
    event_id = f"{run}-{i}"
    value = orjson.dumps({"event_id": event_id, "ts": ts.isoformat(), "store_id": store, "sku": sku,
                          "qty": 1})
    return f"{store}:{sku}".encode(), value, event_id


async def _preload(settings: Settings, cfg: BenchConfig, run: str) -> dict[bytes, str]:
    """Produce N sales; returns the last event_id per key."""
    producer = make_producer(settings, linger_ms=20, acks=1, enable_idempotence=False)
    await producer.start()
    last: dict[bytes, str] = {}
    try:
        topic = settings.topic("pos.sales")
        for i in range(cfg.events):
            key, value, event_id = _sale(i, i % cfg.keys, run, T0 + timedelta(seconds=i))
            last[key] = event_id
            await producer.send(topic, key=key, value=value)
            if i % 20000 == 0 and i:
                console.log(f"bench: pre-loaded {i} events")
        await producer.flush()
    finally:
        await producer.stop()
    return last


async def _raw_consume(settings: Settings, n: int) -> float:
    consumer = make_consumer(settings, "pos.sales", group_id=None, fetch_max_bytes=16 * 1024 * 1024,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    seen = 0
    try:
        start = time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for recs in batch.values():
                for r in recs:
                    orjson.loads(r.value)  # the worker decodes too: count the same JSON parse
                    seen += 1
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def _start_worker(settings: Settings, log_path: str, module: str = "cli.main",
                  *args: str) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module, "worker", *args], env=settings.subprocess_env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )


async def _worker_rate(settings: Settings, last: dict[bytes, str], timeout_s: float) -> tuple[float, float]:
    """Seconds from the first to the last inventory.state (broker timestamps) for the pre-load."""
    consumer = make_consumer(settings, "inventory.state", group_id=None)
    await consumer.start()
    pending = {k.decode(): v for k, v in last.items()}
    first_ts: float | None = None
    last_ts = 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for recs in batch.values():
                for r in recs:
                    ts = r.timestamp / 1000
                    first_ts = ts if first_ts is None else min(first_ts, ts)
                    last_ts = max(last_ts, ts)
                    key = r.key.decode()
                    if pending.get(key) == orjson.loads(r.value).get("last_event_id"):
                        del pending[key]
    finally:
        await consumer.stop()
    if pending or first_ts is None:
        raise RuntimeError(f"the worker did not finish the pre-load in {timeout_s:.0f}s")
    return first_ts, last_ts


async def _noop_rate(settings: Settings, n: int, timeout_s: float, topic: str = "bench.noop") -> float:
    """Events/s of a no-op app (`bench/noop.py`), from the broker timestamps of its per-batch
    counts on `topic`."""
    consumer = make_consumer(settings, topic, group_id=None)
    await consumer.start()
    seen, first, last = 0, None, 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                for r in recs:
                    ts = r.timestamp / 1000
                    first = ts if first is None else min(first, ts)
                    last = max(last, ts)
                    seen += orjson.loads(r.value)["n"]
    finally:
        await consumer.stop()
    if seen < n or first is None:
        raise RuntimeError(f"the no-op app ({topic}) did not finish in {timeout_s:.0f}s")
    return n / max(last - first, 1e-3)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's process group; SIGKILL it if it is not gone within 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def _latency(settings: Settings, cfg: BenchConfig, run: str) -> dict[str, Any]:
    """Fixed-rate production; latency per event to the first state that includes it.

    Events of the first `warmup_seconds` are produced but not scored; `latency_p99_by_5s`
    gives the p99 of each 5-second slice of the scored part, so a transient shows."""
    warm = int(cfg.rate * cfg.warmup_seconds)
    n = warm + int(cfg.rate * cfg.latency_seconds)
    sent_at: dict[str, deque[tuple[str, float, int]]] = defaultdict(deque)
    latencies: list[float] = []
    slices: dict[int, list[float]] = defaultdict(list)
    consumer = make_consumer(settings, "inventory.state", auto_offset_reset="latest", group_id=None)
    await consumer.start()
    await consumer.seek_to_end()
    producer = make_producer(settings, linger_ms=1)
    await producer.start()
    done = asyncio.Event()

    async def receive() -> None:
        while not done.is_set() or any(sent_at.values()):
            batch = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    key = r.key.decode()
                    upto = orjson.loads(r.value).get("last_event_id")
                    q = sent_at[key]
                    if not any(eid == upto for eid, _, _ in q):
                        continue
                    while q:
                        eid, t, i = q.popleft()
                        if i >= warm:
                            latencies.append((now - t) * 1000)
                            slices[int((i - warm) / cfg.rate // 5)].append(latencies[-1])
                        if eid == upto:
                            break
            if done.is_set() and time.perf_counter() - end_time > 10:
                break

    end_time = float("inf")
    receiver = asyncio.create_task(receive())
    topic = settings.topic("pos.sales")
    start = time.perf_counter()
    for i in range(n):
        due = start + i / cfg.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key, value, event_id = _sale(i, i % cfg.keys, f"{run}-lat", T0 + timedelta(days=30, seconds=i))
        sent_at[key.decode()].append((event_id, time.perf_counter(), i))
        await producer.send(topic, key=key, value=value)
    achieved = n / (time.perf_counter() - start)
    await producer.flush()
    end_time = time.perf_counter()
    done.set()
    await receiver
    await producer.stop()
    await consumer.stop()
    return {
        "rate_eps": round(achieved, 1),
        "latency_ms": {"p50": _pct(latencies, 0.50), "p99": _pct(latencies, 0.99)},
        "latency_events": len(latencies),
        "latency_warmup_s": cfg.warmup_seconds,
        "latency_p99_by_5s": [_pct(slices[k], 0.99) for k in sorted(slices)],
    }


async def bench_pipeline(settings: Settings, cfg: BenchConfig) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    settings = settings.model_copy(update={"topic_prefix": f"bench-{run}.", "app_id": f"bench-{run}"})
    await ensure_topics(settings)
    console.log(f"bench: pre-loading {cfg.events} sales on {cfg.keys} keys (prefix {settings.topic_prefix})")
    last = await _preload(settings, cfg, run)
    raw_eps = await _raw_consume(settings, cfg.events)
    console.log(f"bench: raw aiokafka consume {raw_eps:,.0f} events/s; starting a no-op Faust app")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await ensure_topics(settings, ("bench.noop",), changelogs=False)
    noop = _start_worker(settings, str((settings.data_dir / f"bench-noop-{run}.log").resolve()), "bench.noop")
    try:
        noop_eps = await _noop_rate(settings, cfg.events, timeout_s=max(120.0, cfg.events / 2000))
    finally:
        stop_worker(noop)
    console.log(f"bench: no-op Faust {noop_eps:,.0f} events/s; starting the bulk no-op app")
    await ensure_topics(settings, ("bench.bulk-noop",), changelogs=False)
    bulk = _start_worker(settings, str((settings.data_dir / f"bench-bulk-noop-{run}.log").resolve()),
                         "bench.noop", "--bulk")
    try:
        bulk_eps = await _noop_rate(settings, cfg.events, timeout_s=max(120.0, cfg.events / 2000),
                                    topic="bench.bulk-noop")
    finally:
        stop_worker(bulk)
    console.log(f"bench: bulk no-op {bulk_eps:,.0f} events/s; starting the worker")
    log_path = str((settings.data_dir / f"bench-worker-{run}.log").resolve())
    worker = _start_worker(settings, log_path)
    try:
        first, last_ts = await _worker_rate(settings, last, timeout_s=max(120.0, cfg.events / 2000))
        worker_eps = cfg.events / max(last_ts - first, 1e-3)
        console.log(f"bench: worker {worker_eps:,.0f} events/s; measuring latency at {cfg.rate:.0f}/s")
        lat = await _latency(settings, cfg, run)
    finally:
        stop_worker(worker)
        if not cfg.keep_topics:
            await delete_run_topics(settings)
    return {
        "events": cfg.events,
        "raw_consume_eps": round(raw_eps, 1),
        "worker_eps": round(worker_eps, 1),
        "ratio": round(worker_eps / raw_eps, 3),
        "faust_noop_eps": round(noop_eps, 1),
        "ratio_vs_faust_noop": round(worker_eps / noop_eps, 3),
        # The worker's own consumer and hand-off with no logic: its ceiling, and that over raw.
        "bulk_noop_eps": round(bulk_eps, 1),
        "bulk_noop_ratio": round(bulk_eps / raw_eps, 3),
        "ratio_vs_bulk_noop": round(worker_eps / bulk_eps, 3),
        **lat,
        "partitions": settings.partitions,
        "batch_size": settings.batch_size,
    }
