"""`backroom bench soak --json`: hold a rate for minutes, watch lag and RSS, then time a restart.

    backroom broker start
    backroom bench soak --minutes 30 --rate 5000 --keys 100000 --json     # the issue's target
    backroom bench soak --minutes 3 --rate 2000 --json                      # a short check

On a fresh topic prefix and app id: (1) start `backroom worker` as a subprocess and pre-load
every key with `fill` events (a shelf count, then sales; 64 by default, the dedup window) over
the 80 minutes of event time before the paced phase, so its tables hold all `keys` store×SKU
states at their steady-state size before the clock starts: full dedup windows and recent
deltas, and a first demand model per key (the 06:00 bucket closes during the pre-load). RSS
drift then measures what a soak is for, growth at steady state, not 100k windows filling
(`--fill 1`, one count per key, shows that: +6 to +20 % in 3-minute runs);
(2) produce POS sales and backroom scans at `rate` events/s for `minutes`, spread over the keys,
while a sampler reads the worker's RSS (psutil, else /proc/PID/status) and the consumer group's
lag (committed offsets vs end offsets, through the admin API) every `sample_s`; (3) stop
producing and time the drain to zero lag; (4) stop the worker and start a new one, produce one
new event, and time restart → its inventory.state (`recovery_s`: process start, group join,
changelog recovery of every key, processing).

`rss_mb.start` is read after a warm-up (a tenth of the run, at most a minute) so that imports,
buffers and the first table growth do not count as drift; `rss_drift_pct` is end vs start.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from backroom.settings import Settings
from bench.pipeline import _start_worker, stop_worker
from bench.processing import FILL_SPAN, steady_state_events
from producers.kafka import make_consumer, make_producer
from streams.topics import delete_run_topics, ensure_topics

log = logging.getLogger("backroom.soak")
console = Console(stderr=True)
T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
# Event time runs with the wall clock, as in a store: at a few events per key per hour, running
# it faster would make every event close a demand bucket and retrain (far more work per event
# than production sees). The pre-load spans 06:00-07:20, so every key's 06:00 bucket closes in
# it (at 07:15, after the 15-min grace) and its first model exists before the paced phase.
SPEED = 1.0
SOAK_START = T0 + FILL_SPAN
SOURCE_TOPICS = ("pos.sales", "backroom.scans", "shelf.observations")  # what the worker consumes


@dataclass
class SoakConfig:
    minutes: float = 30.0
    rate: float = 5000.0
    keys: int = 100_000
    stores: int = 50
    sample_s: float = 5.0
    fill: int = 64  # pre-load events per key (1 = a single count)
    keep_topics: bool = False  # leave the run's topics on the broker (~17 GB after 30 min at 3,000/s)
    drain_timeout_s: float = 300.0


def key_of(i: int, stores: int) -> tuple[str, str]:
    return f"S{i % stores:03d}", f"SKU-{i // stores:06d}"


def rss_mb(pid: int) -> float:
    try:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no RSS for pid {pid}")


class LagProbe:
    """Consumer-group lag: the sum over the worker's source partitions of end - committed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.group = settings.app_id
        self.topics = {settings.topic(t) for t in SOURCE_TOPICS}

    async def __aenter__(self) -> LagProbe:
        from aiokafka.admin import AIOKafkaAdminClient

        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap)
        await self.admin.start()
        self.consumer = make_consumer(self.settings, group_id=None)
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self) -> int:
        from aiokafka import TopicPartition
        from aiokafka.errors import KafkaError

        try:
            committed = await self.admin.list_consumer_group_offsets(self.group)
        except KafkaError as exc:
            # On a fresh broker the group's coordinator (__consumer_offsets) may not exist yet:
            # nothing is committed, so everything is still to read.
            log.debug("soak: committed offsets not available yet: %s", exc)
            committed = {}
        for attempt in range(2):
            tps = [TopicPartition(t, p) for t in self.topics
                   for p in (self.consumer.partitions_for_topic(t) or ())]
            if tps or attempt:
                break
            # A consumer with no subscription knows no topics until asked to look them up.
            await self.consumer._client.force_metadata_update()
        if not tps:
            return -1
        ends = await self.consumer.end_offsets(tps)
        total = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            # A partition the group never committed has all of its records still to read.
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            total += max(0, end - done)
        return total


class Load:
    """Paced producer of sales (85 %), shelf moves (10 %) and deliveries (5 %) over the keys."""

    def __init__(self, settings: Settings, cfg: SoakConfig, run: str) -> None:
        self.settings, self.cfg, self.run = settings, cfg, run
        self.sent = 0
        self.sales = settings.topic("pos.sales")
        self.scans = settings.topic("backroom.scans")

    def event(self, i: int, ts: datetime) -> tuple[str, bytes, bytes]:
        store, sku = key_of((i * 7919) % self.cfg.keys, self.cfg.stores)  # a prime stride: spread
        base = {"event_id": f"{self.run}-{i}", "ts": ts.isoformat(), "store_id": store, "sku": sku}
        r = i % 20
        if r < 17:
            topic, value = self.sales, {**base, "qty": 1}
        elif r < 19:
            topic, value = self.scans, {**base, "kind": "move_to_shelf", "qty": 6}
        else:
            topic, value = self.scans, {**base, "kind": "receive", "qty": 24}
        return topic, f"{store}:{sku}".encode(), orjson.dumps(value)

    async def preload(self, producer: Any) -> None:
        """Per key, unpaced: a shelf count, then `fill - 1` sales spread up to SOAK_START. Key
        by key, so the worker's batches hold many events of few keys and take it in quickly."""
        fill = max(1, self.cfg.fill)
        topics = {"pos.sales": self.sales, "backroom.scans": self.scans}
        for i in range(self.cfg.keys):
            store, sku = key_of(i, self.cfg.stores)
            key = f"{store}:{sku}".encode()
            for topic, event in steady_state_events(store, sku, fill, SOAK_START, f"{self.run}-pre"):
                await producer.send(topics[topic], key=key, value=orjson.dumps(event))
        await producer.flush()

    async def paced(self, producer: Any, seconds: float) -> float:
        """Produce at cfg.rate for `seconds`; returns the achieved events/s."""
        start = time.perf_counter()
        end = start + seconds
        while (now := time.perf_counter()) < end:
            due = int((now - start) * self.cfg.rate)
            ts = SOAK_START + timedelta(seconds=(now - start) * SPEED)
            while self.sent < due:
                topic, key, value = self.event(self.sent, ts)
                await producer.send(topic, key=key, value=value)
                self.sent += 1
            await asyncio.sleep(0.01)
        await producer.flush()
        return self.sent / (time.perf_counter() - start)


async def wait_drained(probe: LagProbe, timeout_s: float) -> float | None:
    """Seconds until the group's lag is zero; None when it is not within timeout_s."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if await probe.lag() == 0:
            return time.perf_counter() - start
        await asyncio.sleep(0.5)
    return None


async def time_to_state(settings: Settings, producer: Any, run: str, timeout_s: float) -> float:
    """Produce one sale for a new key now; seconds until its inventory.state is on the topic."""
    consumer = make_consumer(settings, "inventory.state", group_id=None, auto_offset_reset="latest")
    await consumer.start()
    try:
        await consumer.seek_to_end()
        event_id = f"{run}-probe-{uuid.uuid4().hex[:6]}"
        value = {"event_id": event_id, "ts": (T0 + timedelta(days=5)).isoformat(),
                 "store_id": "PROBE", "sku": "SKU-PROBE", "qty": 1}
        start = time.perf_counter()
        await producer.send_and_wait(settings.topic("pos.sales"), key=b"PROBE:SKU-PROBE",
                                     value=orjson.dumps(value))
        while time.perf_counter() - start < timeout_s:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                for r in recs:
                    if r.key == b"PROBE:SKU-PROBE" and orjson.loads(r.value).get("last_event_id") == event_id:
                        return time.perf_counter() - start
        raise RuntimeError(f"no inventory.state for the probe within {timeout_s:.0f}s")
    finally:
        await consumer.stop()


async def changelog_records(settings: Settings, probe: LagProbe) -> int:
    """Records a restarted worker may read to rebuild the inventory table (before compaction)."""
    from aiokafka import TopicPartition

    topic = f"{settings.app_id}-inventory-changelog"
    parts = probe.consumer.partitions_for_topic(topic)
    if not parts:
        await probe.consumer._client.force_metadata_update()
        parts = probe.consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    if not tps:
        return 0
    ends = await probe.consumer.end_offsets(tps)
    starts = await probe.consumer.beginning_offsets(tps)
    return int(sum(ends[tp] - starts[tp] for tp in tps))


async def bench_soak(settings: Settings, cfg: SoakConfig) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    # Own prefix and group; no /metrics port, so a soak never collides with a running worker.
    settings = settings.model_copy(update={
        "topic_prefix": f"soak-{run}.", "app_id": f"soak-{run}", "metrics_port": 0,
    })
    await ensure_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = str((settings.data_dir / f"soak-worker-{run}.log").resolve())
    load = Load(settings, cfg, run)
    producer = make_producer(settings, linger_ms=10, acks=1, enable_idempotence=False)
    await producer.start()
    worker = _start_worker(settings, log_path)
    samples: list[dict[str, float]] = []
    try:
        async with LagProbe(settings) as probe:
            console.log(f"soak: pre-loading {cfg.keys:,} keys (prefix {settings.topic_prefix}, "
                        f"worker log {log_path})")
            t_pre = time.perf_counter()
            await load.preload(producer)
            if await wait_drained(probe, max(cfg.drain_timeout_s, cfg.keys * cfg.fill / 1000)) is None:
                raise RuntimeError(f"the worker did not take in the pre-load; see {log_path}")
            preload_s = time.perf_counter() - t_pre
            console.log(f"soak: tables hold {cfg.keys:,} keys after {preload_s:.0f}s; "
                        f"{cfg.rate:,.0f} events/s for {cfg.minutes:g} min")

            seconds = cfg.minutes * 60
            t0 = time.perf_counter()
            stop = asyncio.Event()

            async def sampler() -> None:
                while not stop.is_set():
                    lag = await probe.lag()
                    samples.append({"t_s": round(time.perf_counter() - t0, 1),
                                    "rss_mb": round(rss_mb(worker.pid), 1), "lag": lag,
                                    "sent": load.sent})
                    if len(samples) % max(1, int(60 / cfg.sample_s)) == 0:
                        console.log(f"soak: t={samples[-1]['t_s']:.0f}s rss={samples[-1]['rss_mb']:.0f} MB "
                                    f"lag={lag} sent={load.sent:,}")
                    try:
                        await asyncio.wait_for(stop.wait(), cfg.sample_s)
                    except TimeoutError:
                        pass

            sampling = asyncio.create_task(sampler())
            achieved = await load.paced(producer, seconds)
            drain_s = await wait_drained(probe, cfg.drain_timeout_s)
            stop.set()
            await sampling
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({worker.returncode}); see {log_path}")

            lag_at_restart = 0 if drain_s is not None else await probe.lag()
            records = await changelog_records(settings, probe)
            # Not drained in time: the restart below then also times the remaining backlog
            # (the probe queues behind it), which `lag_end` shows.
            console.log(f"soak: drained in {drain_s}s; restarting the worker "
                        f"({records:,} inventory changelog records)")
            stop_worker(worker)
            worker = _start_worker(settings, log_path)
            recovery_s: float | None = None
            try:
                recovery_s = await time_to_state(settings, producer, run, timeout_s=cfg.drain_timeout_s * 2)
                console.log(f"soak: restarted worker processed a new event after {recovery_s:.1f}s")
            except RuntimeError as exc:  # behind a backlog it did not clear: reported as null
                console.log(f"soak: {exc}")
    finally:
        stop_worker(worker)
        await producer.stop()
        if not cfg.keep_topics:
            await delete_run_topics(settings)

    warm = min(60.0, seconds / 10)
    during = [s for s in samples if s["t_s"] <= seconds] or samples
    steady = [s for s in during if s["t_s"] >= warm] or during
    rss_start, rss_end = steady[0]["rss_mb"], steady[-1]["rss_mb"]
    return {
        "minutes": cfg.minutes,
        "fill": cfg.fill,
        "rate_eps": cfg.rate,
        "achieved_eps": round(achieved, 1),
        "events": load.sent,
        "keys": cfg.keys,
        "rss_mb": {"start": rss_start, "end": rss_end, "max": max(s["rss_mb"] for s in during)},
        "rss_drift_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
        "lag_max": max(int(s["lag"]) for s in during),
        "lag_end": int(during[-1]["lag"]),
        "drain_s": None if drain_s is None else round(drain_s, 2),
        "lag_at_restart": 0 if drain_s is not None else lag_at_restart,
        "preload_s": round(preload_s, 1),
        "recovery_s": None if recovery_s is None else round(recovery_s, 2),
        "recovery_changelog_records": records,
        "store": settings.store,
        "partitions": settings.partitions,
        "topic_prefix": settings.topic_prefix,
        "sample_s": cfg.sample_s,
        "samples": during,
    }
