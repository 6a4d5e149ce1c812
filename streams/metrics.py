"""Prometheus metrics of the worker: `curl http://127.0.0.1:9108/metrics` while `backroom worker` runs.

The port is `BACKROOM_METRICS_PORT` (default 9108; 0 turns the endpoint off), the address
`BACKROOM_METRICS_HOST` (default 127.0.0.1; 0.0.0.0 in a container). `create_app` builds one
`Metrics` per app, each with its own `CollectorRegistry`, so several apps in one process (tests)
never share or collide on series. The agents call `observe_batch`; a timer samples consumer lag
and open alerts every `metrics_interval_s`; the HTTP server starts with the worker, not with the
app object, so building an app for `test_context()` binds no port.

Series (all prefixed `backroom_`): events_processed_total{topic,agent},
dead_lettered_total{topic}, duplicates_total{topic}, consumer_lag{topic,partition},
open_alerts{type}, vision_inference_seconds (histogram, per frame batch), vision_frames_total,
batch_size{agent} (histogram). The list with meanings is in docs/operations.md.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streams.faust_internals import committed_offsets

log = logging.getLogger("backroom.metrics")

# Batches range from 1 (a quiet store) to BATCH_SIZE (5000 by default, catch-up after a restart).
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# A frame batch on a 2-core CPU takes 15-500 ms (DESIGN §7); on a GPU a few ms.
INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The worker's series in a private registry; `render()` is the /metrics body."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("backroom_events_processed", "events an agent took from a topic "
                              "(valid, duplicate or dead-lettered)", ["topic", "agent"], registry=r)
        self.dead = Counter("backroom_dead_lettered", "events sent to dead-letter, by source topic",
                            ["topic"], registry=r)
        self.duplicates = Counter("backroom_duplicates", "redelivered or resent events skipped "
                                  "(idempotence)", ["topic"], registry=r)
        self.lag = Gauge("backroom_consumer_lag", "end offset minus committed offset, per "
                         "assigned source partition", ["topic", "partition"], registry=r)
        self.open_alerts = Gauge("backroom_open_alerts", "open alerts in this worker's partitions",
                                 ["type"], registry=r)
        self.inference = Histogram("backroom_vision_inference_seconds", "wall time of one frame "
                                   "batch through decode, detector and planogram matching",
                                   buckets=INFERENCE_BUCKETS, registry=r)
        self.frames = Counter("backroom_vision_frames", "camera frames taken by the vision agent",
                              registry=r)
        self.batch = Histogram("backroom_batch_size", "events per agent batch", ["agent"],
                               buckets=BATCH_BUCKETS, registry=r)
        self._lag_tps: set[tuple[str, str]] = set()
        self._alert_types: set[str] = set()
        self.server: Any = None

    # --- called by the agents ------------------------------------------------------------
    def observe_batch(self, topic: str, agent: str, n: int, dead: Sequence[Any] = (),
                      duplicates: int = 0) -> None:
        """One agent batch: n events of `topic`, the dead letters and duplicates it produced."""
        if n:
            self.events.labels(topic, agent).inc(n)
            self.batch.labels(agent).observe(n)
        # A dead letter names its own source topic (the alerts agent reads two topics at once).
        for source, count in Tally(getattr(d, "source_topic", topic) for d in dead).items():
            self.dead.labels(source).inc(count)
        if duplicates:
            self.duplicates.labels(topic).inc(duplicates)

    def dead_lettered(self, topic: str, n: int = 1) -> None:
        self.dead.labels(topic).inc(n)

    def observe_inference(self, frames: int, seconds: float) -> None:
        if frames:
            self.frames.inc(frames)
            self.inference.observe(seconds)

    # --- sampled by the timer ------------------------------------------------------------
    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Lag per (topic, partition); partitions no longer assigned are dropped."""
        current = {(t, str(p)) for t, p in lags}
        for gone in self._lag_tps - current:
            self.lag.remove(*gone)
        for (topic, partition), value in lags.items():
            self.lag.labels(topic, str(partition)).set(max(0, value))
        self._lag_tps = current

    def set_open_alerts(self, books: Iterable[Any]) -> None:
        """Count open alerts by type over the alert books (`{"open": {type: ...}}` values)."""
        counts: Tally[str] = Tally()
        for book in books:
            if isinstance(book, dict):
                counts.update(list(book.get("open") or ()))  # the keys are the types
        # Types that closed everywhere go to 0 rather than vanishing: a dashboard sees the drop.
        for type_ in self._alert_types | set(counts):
            self.open_alerts.labels(type_).set(counts.get(type_, 0))
        self._alert_types |= set(counts)

    # --- serving ---------------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> bool:
        """Start the /metrics HTTP server in a thread; False (logged) when the port is taken,
        because a second worker on the same host must still run (give it another port)."""
        from prometheus_client import start_http_server

        try:
            self.server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            log.warning("metrics: cannot listen on %s:%s (%s); set BACKROOM_METRICS_PORT to a free "
                        "port or 0", host, port, exc)
            return False
        log.info("metrics on http://%s:%s/metrics", host, port)
        return True

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


async def consumer_lags(consumer: Any) -> dict[tuple[str, int], int]:
    """End offset minus committed offset for each assigned source partition of a Faust consumer.

    Table changelogs (read only during recovery) and Faust's leader-assignor topic are skipped:
    their "lag" says nothing about keeping up. The committed offset is Faust's own record of what it committed
    (`streams.faust_internals.committed_offsets`); before the first commit the fetch position
    stands in, so a fresh worker still reports how far behind it starts.
    """
    tps = [tp for tp in consumer.assignment()
           if not tp.topic.endswith("-changelog") and "__assignor" not in tp.topic]
    if not tps:
        return {}
    ends = await consumer.highwaters(*tps)
    committed = committed_offsets(consumer)
    lags: dict[tuple[str, int], int] = {}
    for tp in tps:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        if done is None:
            try:
                done = await consumer.position(tp)
            except Exception:  # not yet positioned (mid-rebalance): skip this round
                continue
        if done is not None:
            lags[(tp.topic, tp.partition)] = int(end) - int(done)
    return lags


def instrument(app: Any, metrics: Metrics, host: str, port: int | None, interval_s: float,
               alert_books: Any) -> None:
    """Attach the sampling timer and the HTTP server to a Faust app (both run with the worker)."""

    count_due = 0.0  # perf_counter time of the next open-alert count

    @app.timer(interval_s, name="metrics-sample")
    async def sample() -> None:
        nonlocal count_due
        # Metrics must never take the worker down: a failed sample is logged and skipped.
        try:
            metrics.set_lag(await consumer_lags(app.consumer))
        except Exception as exc:
            log.debug("metrics: lag sample failed: %s", exc)
        t0 = time.perf_counter()
        if t0 < count_due:
            return
        try:
            metrics.set_open_alerts(alert_books.values())
        except Exception as exc:
            log.warning("metrics: open-alert count failed: %s", exc)
        took = time.perf_counter() - t0
        # A scan of this worker's books blocks the loop (~0.2 s at 100k keys, 4 % of the worker
        # in a soak at a 5-s interval): refresh the gauge at most as often as keeps it under 1 %.
        count_due = t0 + 100 * took
        if took > 0.2:
            log.info("metrics: counting open alerts took %.2fs", took)

    if port:

        @app.task
        async def serve_metrics() -> None:
            metrics.serve(port, host)
