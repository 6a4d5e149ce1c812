"""`backroom bench scale --keys N --json`: one worker holding N store×SKU keys at steady state.

    backroom broker start
    nice backroom bench scale --keys 1000000 --store rocksdb:// --json

On a fresh topic prefix and app id (and its own data dir):

1. **Pre-load by the changelog.** One key is brought to steady state by the real processor
   (`bench.processing.steady_state_events`: a shelf count and 63 sales over 80 minutes, so a
   full dedup window, its recent deltas and a first demand model); its value is then written for
   every one of the N keys (own store and SKU, no source offsets) straight into the inventory
   table's changelog topic, at the partition the worker's partitioner gives the key. Values are
   exactly the size they reach by events; producing 64 × N events through the worker instead
   would take hours at 1M keys. The worker then recovers its table from that changelog, as after
   any restart.
2. **Key-diverse throughput.** `--events` sales, each for a different key (a prime stride over
   the N keys), are produced before the worker starts; once it is ready it works through them
   and `events_per_s` is their count over the time from "Worker ready" to the broker timestamp
   of the last inventory.state it published for them.
3. **RSS** of the worker after that (`rss_mb`; `rss_peak_mb` is its high-water mark, recovery
   included); **disk bytes per key**: the inventory table's RocksDB files over N (0 for
   `memory://`).
4. **Latency** at a fixed rate (`--rate`, key-diverse): per event, produce → its inventory.state
   on the topic; p50/p99 after `--warmup` seconds.
5. **Recovery**: the worker is killed (SIGKILL) and restarted; `recovery_s` is the time from the
   restart until a new sale's inventory.state is published (recovered and processing).

Prints one JSON object: `keys, store, events_per_s, rss_mb, disk_bytes_per_key, value_bytes,
latency_ms{p50,p99}, recovery_s` and the phases' details.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from backroom.inventory import SkuState
from backroom.processing import InventoryProcessor
from backroom.settings import Settings
from backroom.state_codec import decode_state, encode_state
from bench.processing import T0, preload
from producers.kafka import make_consumer, make_producer
from streams.topics import delete_run_topics, ensure_topics

STORES = 500  # the keys are spread over this many stores (a chain's 500 × SKUs)
STRIDE = 7919  # a prime: consecutive events go to keys far apart


@dataclass
class ScaleConfig:
    keys: int = 100_000
    store: str = "rocksdb://"
    events: int = 0  # key-diverse events timed (0: min(keys, 200,000))
    rate: float = 1000.0
    latency_seconds: float = 20.0
    warmup_seconds: float = 5.0
    timeout_s: float = 900.0
    keep_topics: bool = False


def stride(keys: int) -> int:
    return STRIDE if keys % STRIDE else STRIDE + 8  # 7927, also prime


def key_of(k: int) -> tuple[str, str]:
    return f"S{k % STORES:03d}", f"SKU-{k // STORES:06d}"


def _log(msg: str) -> None:
    print(f"[bench scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def steady_state_template(settings: Settings) -> SkuState:
    """One key after the steady-state events, through the real processor; no source offsets
    (the run's topics start at 0, and a state remembers the offsets it applied)."""
    inv = InventoryProcessor(settings)
    table: dict[str, bytes] = {}
    for msgs in preload(1, 64):
        table.update(inv.process(msgs, table.get, lambda _k: None).values)
    (value,) = table.values()
    state = decode_state(value)
    state.offsets = {}
    return state


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _tree_bytes(path: Path, pattern: str) -> int:
    return sum(f.stat().st_size for d in path.glob(pattern) for f in d.rglob("*") if f.is_file())


class Worker:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        self.log_path.write_bytes(b"")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker", "--loglevel", "info"],
                env=self.settings.subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return time.perf_counter()

    async def ready(self, timeout_s: float) -> float:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if b"Worker ready" in self.log_path.read_bytes():
                return time.perf_counter()
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{self.tail()}")
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the worker was not ready within {timeout_s:.0f}s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def preload_changelog(settings: Settings, template: SkuState, keys: int) -> tuple[int, float]:
    """Every key's steady-state value into the inventory changelog; (value bytes, seconds)."""
    topic = f"{settings.app_id}-inventory-changelog"
    # Bench setup, not the product's durability: acks=1, large batches, lz4-free.
    producer = make_producer(settings, linger_ms=50, acks=1, enable_idempotence=False,
                             max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    start = time.perf_counter()
    total = 0
    try:
        for k in range(keys):
            template.store_id, template.sku = key_of(k)
            value = encode_state(template)
            total += len(value)
            await producer.send(topic, key=f"{template.store_id}:{template.sku}".encode(), value=value)
            if k % 200_000 == 199_999:
                _log(f"pre-load: {k + 1:,} keys")
        await producer.flush()
    finally:
        await producer.stop()
    return round(total / max(keys, 1)), time.perf_counter() - start


def _sale(key_index: int, event_id: str, ts_s: float) -> tuple[bytes, bytes]:
    store, sku = key_of(key_index)
    ts = (T0 + timedelta(seconds=ts_s)).isoformat()
    value = orjson.dumps({"event_id": event_id, "ts": ts, "store_id": store, "sku": sku, "qty": 1})
    return f"{store}:{sku}".encode(), value


async def produce_diverse(settings: Settings, run: str, n: int, keys: int) -> None:
    """`n` sales, each for a different key while n <= keys, within 10 minutes of event time
    after the pre-load's (no demand hour closes: as `bench processing --fill`)."""
    producer = make_producer(settings, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        topic = settings.topic("pos.sales")
        for i in range(n):
            key, value = _sale((i * stride(keys)) % keys, f"{run}-d{i}", 1 + 600 * i / n)
            await producer.send(topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def _state_span(settings: Settings, expected: int, timeout_s: float) -> tuple[float, float, int]:
    """Until `expected` inventory.state records are on the topic: the broker timestamps of
    the first and the last, and how many were read."""
    consumer = make_consumer(settings, "inventory.state", group_id=None, max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    first, last, seen = float("inf"), 0.0, 0
    deadline = time.perf_counter() + timeout_s
    try:
        while seen < expected and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for recs in batch.values():
                seen += len(recs)
                for r in recs:
                    first, last = min(first, r.timestamp / 1000), max(last, r.timestamp / 1000)
    finally:
        await consumer.stop()
    if seen < expected:
        raise RuntimeError(f"only {seen:,} of {expected:,} states within {timeout_s:.0f}s")
    return first, last, seen


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def latency(settings: Settings, cfg: ScaleConfig, run: str, keys: int) -> dict[str, Any]:
    """Fixed-rate key-diverse sales; per event, produce → its inventory.state."""
    warm = int(cfg.rate * cfg.warmup_seconds)
    n = warm + int(cfg.rate * cfg.latency_seconds)
    sent: dict[str, tuple[float, int]] = {}
    lat: list[float] = []
    consumer = make_consumer(settings, "inventory.state", auto_offset_reset="latest", group_id=None)
    await consumer.start()
    await consumer.seek_to_end()
    producer = make_producer(settings, linger_ms=1)
    await producer.start()
    done = False

    async def receive() -> None:
        quiet_since = None
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    hit = sent.pop(orjson.loads(r.value).get("last_event_id"), None)
                    if hit is not None and hit[1] >= warm:
                        lat.append((now - hit[0]) * 1000)
            if done:
                quiet_since = quiet_since or now
                if not sent or now - quiet_since > 15:
                    return

    receiver = asyncio.create_task(receive())
    topic = settings.topic("pos.sales")
    offset = 7 * keys // 11  # keys the throughput phase touched last, far from its first ones
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / cfg.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event_id = f"{run}-l{i}"
        key, value = _sale(((offset + i) * stride(keys)) % keys, event_id, 700 + i / cfg.rate)
        sent[event_id] = (time.perf_counter(), i)
        await producer.send(topic, key=key, value=value)
    achieved = n / (time.perf_counter() - start)
    await producer.flush()
    done = True
    await receiver
    await producer.stop()
    await consumer.stop()
    return {"rate_eps": round(achieved, 1), "scored": len(lat),
            "latency_ms": {"p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99)}}


async def time_to_state(settings: Settings, run: str, timeout_s: float) -> float:
    """Produce one sale for a pre-loaded key now; seconds until its inventory.state is out."""
    consumer = make_consumer(settings, "inventory.state", group_id=None, auto_offset_reset="latest")
    await consumer.start()
    producer = make_producer(settings)
    await producer.start()
    try:
        await consumer.seek_to_end()
        event_id = f"{run}-probe-{uuid.uuid4().hex[:6]}"
        key, value = _sale(3, event_id, 900)
        start = time.perf_counter()
        await producer.send_and_wait(settings.topic("pos.sales"), key=key, value=value)
        while time.perf_counter() - start < timeout_s:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                for r in recs:
                    if orjson.loads(r.value).get("last_event_id") == event_id:
                        return time.perf_counter() - start
        raise RuntimeError(f"no inventory.state for the probe within {timeout_s:.0f}s")
    finally:
        await producer.stop()
        await consumer.stop()


async def bench_scale(settings: Settings, cfg: ScaleConfig) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    data_dir = (settings.data_dir / f"bench-scale-{run}").resolve()
    settings = settings.model_copy(update={
        "topic_prefix": f"scale-{run}.", "app_id": f"scale-{run}", "metrics_port": 0,
        "store": cfg.store, "data_dir": data_dir,
    })
    # At most one event per key: each is then its own inventory.state (none coalesced).
    events = min(cfg.events or 200_000, cfg.keys)
    cfg = replace(cfg, events=events)
    data_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(settings, data_dir / "worker.log")
    out: dict[str, Any] = {"keys": cfg.keys, "store": cfg.store}
    try:
        await ensure_topics(settings)
        template = steady_state_template(settings)
        _log(f"pre-loading {cfg.keys:,} keys into the changelog")
        value_bytes, preload_s = await preload_changelog(settings, template, cfg.keys)
        _log(f"pre-load done in {preload_s:.1f}s; producing {events:,} key-diverse sales")
        await produce_diverse(settings, run, events, cfg.keys)

        started = worker.start()
        ready = await worker.ready(cfg.timeout_s)
        ready_wall = time.time()
        _log(f"worker recovered {cfg.keys:,} keys in {ready - started:.1f}s; timing {events:,} events")
        first, last, _ = await _state_span(settings, events, cfg.timeout_s)
        # From "Worker ready" (its first fetch, the first batch included) to the last state.
        eps = events / max(last - min(first, ready_wall), 1e-3)
        assert worker.proc is not None
        pid = worker.proc.pid
        rss = _status_kb(pid, "VmRSS") / 1024
        tables = data_dir / "worker" / "v1" / "tables"
        disk = _tree_bytes(tables, "inventory-*.db") if cfg.store.startswith("rocksdb") else 0
        _log(f"{eps:,.0f} events/s, RSS {rss:,.0f} MB; latency at {cfg.rate:.0f}/s")
        lat = await latency(settings, cfg, run, cfg.keys)
        peak = _status_kb(pid, "VmHWM") / 1024

        worker.stop(signal.SIGKILL)
        restarted = worker.start()
        recovered = await worker.ready(cfg.timeout_s)
        probe = await time_to_state(settings, run, cfg.timeout_s)
        recovery_s = recovered - restarted + probe
        _log(f"recovery after kill -9: ready in {recovered - restarted:.1f}s, first state {probe:.1f}s later")
        out.update({
            "events_per_s": round(eps),
            "rss_mb": round(rss),
            "disk_bytes_per_key": round(disk / cfg.keys),
            "value_bytes": value_bytes,
            "latency_ms": lat["latency_ms"],
            "recovery_s": round(recovery_s, 1),
            "events": events,
            "rate_eps": lat["rate_eps"],
            "latency_events": lat["scored"],
            "rss_peak_mb": round(peak),
            "preload_s": round(preload_s, 1),
            "first_recovery_s": round(ready - started, 1),
            "restart_ready_s": round(recovered - restarted, 1),
            "store_cache_mb": settings.store_cache_mb,
            "partitions": settings.partitions,
        })
        return out
    finally:
        worker.stop()
        if not cfg.keep_topics:
            await delete_run_topics(settings)
            shutil.rmtree(data_dir, ignore_errors=True)
