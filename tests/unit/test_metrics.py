"""Worker metrics (streams/metrics.py) and JSON logs (backroom/logs.py), without a broker.

    .venv/bin/pytest -q tests/unit/test_metrics.py
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backroom.logs import JsonFormatter, logging_config, worker_logging_config
from backroom.settings import Settings
from streams.metrics import Metrics, consumer_lags


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_batches_count_events_dead_letters_by_source_and_duplicates() -> None:
    m = Metrics()
    dead = [SimpleNamespace(source_topic="inventory.state"), SimpleNamespace(source_topic="shelf.observations"),
            SimpleNamespace(source_topic="inventory.state")]
    m.observe_batch("pos.sales", "inventory", 100, duplicates=3)
    m.observe_batch("inventory.state", "alerts", 10, dead)
    m.dead_lettered("catalog.skus")
    got = samples(m)
    assert got[("backroom_events_processed_total", (("agent", "inventory"), ("topic", "pos.sales")))] == 100
    assert got[("backroom_dead_lettered_total", (("topic", "inventory.state"),))] == 2
    assert got[("backroom_dead_lettered_total", (("topic", "shelf.observations"),))] == 1
    assert got[("backroom_dead_lettered_total", (("topic", "catalog.skus"),))] == 1
    assert got[("backroom_duplicates_total", (("topic", "pos.sales"),))] == 3
    assert got[("backroom_batch_size_count", (("agent", "inventory"),))] == 1
    assert got[("backroom_batch_size_sum", (("agent", "alerts"),))] == 10


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_batch("pos.sales", "inventory", 5)
    assert ("backroom_events_processed_total", (("agent", "inventory"), ("topic", "pos.sales"))) not in samples(b)


def test_lag_drops_partitions_no_longer_assigned() -> None:
    m = Metrics()
    m.set_lag({("pos.sales", 0): 12, ("pos.sales", 1): 0})
    m.set_lag({("pos.sales", 1): 7})
    got = samples(m)
    assert got[("backroom_consumer_lag", (("partition", "1"), ("topic", "pos.sales")))] == 7
    assert ("backroom_consumer_lag", (("partition", "0"), ("topic", "pos.sales"))) not in got


def test_open_alerts_by_type_fall_to_zero_when_resolved() -> None:
    m = Metrics()
    m.set_open_alerts([{"open": {"REORDER": {}, "RESTOCK_SHELF": {}}}, {"open": {"REORDER": {}}}, None])
    got = samples(m)
    assert got[("backroom_open_alerts", (("type", "REORDER"),))] == 2
    assert got[("backroom_open_alerts", (("type", "RESTOCK_SHELF"),))] == 1
    m.set_open_alerts([{"open": {}}])
    assert samples(m)[("backroom_open_alerts", (("type", "REORDER"),))] == 0


def test_inference_histogram() -> None:
    m = Metrics()
    m.observe_inference(8, 0.04)
    m.observe_inference(0, 9.0)  # a batch of only bad frames ran no inference
    got = samples(m)
    assert got[("backroom_vision_inference_seconds_count", ())] == 1
    assert got[("backroom_vision_frames_total", ())] == 8
    assert got[("backroom_vision_inference_seconds_bucket", (("le", "0.05"),))] == 1


async def test_consumer_lags_skip_changelogs_and_use_committed_offsets() -> None:
    from faust.types import TP

    class FakeConsumer:
        def __init__(self) -> None:
            self.a, self.b = TP("pos.sales", 0), TP("pos.sales", 1)
            self.c = TP("backroom-inventory-changelog", 0)
            self._committed_offset = {self.a: 90}

        def assignment(self) -> set[Any]:
            return {self.a, self.b, self.c}

        async def highwaters(self, *tps: Any) -> dict[Any, int]:
            assert self.c not in tps
            return {self.a: 100, self.b: 50}

        async def position(self, t: Any) -> int:
            return 45

    assert await consumer_lags(FakeConsumer()) == {("pos.sales", 0): 10, ("pos.sales", 1): 5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_exposes_metrics_and_a_taken_port_is_not_fatal() -> None:
    m, other = Metrics(), Metrics()
    port = free_port()
    m.observe_batch("pos.sales", "inventory", 3)
    assert m.serve(port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'backroom_events_processed_total{agent="inventory",topic="pos.sales"} 3.0' in body
        assert other.serve(port) is False  # logged, the second worker keeps running
    finally:
        m.close()


def test_settings_ops_block() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.metrics_port == 9108 and s.log_format == "text"
    assert Settings(_env_file=None, metrics_port=0).metrics_port == 0  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        Settings(_env_file=None, log_format="xml")  # type: ignore[call-arg]


def test_json_log_lines() -> None:
    fmt = JsonFormatter()
    record = logging.LogRecord("backroom.worker", logging.WARNING, __file__, 1, "dead-letter %s: %s",
                               ("pos.sales", "bad qty\n"), None)
    record.store_id = "S1"
    line = fmt.format(record)
    assert "\n" not in line
    data = orjson.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "backroom.worker"
    assert data["msg"] == "dead-letter pos.sales: bad qty\n" and data["store_id"] == "S1"
    assert data["ts"].endswith("+00:00")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert "RuntimeError: boom" in orjson.loads(fmt.format(record))["exc"]


def test_worker_logging_config_only_for_json() -> None:
    assert worker_logging_config(Settings(_env_file=None), "warning") is None  # type: ignore[call-arg]
    cfg = worker_logging_config(Settings(_env_file=None, log_format="json"), "warning")  # type: ignore[call-arg]
    assert cfg == logging_config("WARNING")
    logging.config.dictConfig(cfg)  # a valid dictConfig
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
