"""`backroom bench scale` at a small N on the real broker and worker (the 1M-key run is manual).

    pytest tests/integration/test_scale_bench.py      # ~45 s
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backroom.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_scale_reports_every_field_from_a_real_run(kafka_settings: Settings) -> None:
    pytest.importorskip("rocksdict")
    from bench.scale import ScaleConfig, bench_scale

    cfg = ScaleConfig(keys=3000, store="rocksdb://", events=2000, rate=200.0,
                      latency_seconds=3.0, warmup_seconds=1.0, timeout_s=240.0)
    out: dict[str, Any] = asyncio.run(bench_scale(kafka_settings, cfg))
    assert {"keys", "store", "events_per_s", "rss_mb", "disk_bytes_per_key", "value_bytes",
            "latency_ms", "recovery_s"} <= out.keys()
    assert (out["keys"], out["store"], out["events"]) == (3000, "rocksdb://", 2000)
    # Steady-state values: a full dedup window (512 B), deltas and a demand model.
    assert 800 < out["value_bytes"] < 2000
    assert out["events_per_s"] > 0 and out["rss_mb"] > 50
    # The table is on disk: at least the values themselves (RocksDB's WAL, or its files).
    assert out["disk_bytes_per_key"] >= out["value_bytes"] // 2
    assert out["latency_events"] > 0 and out["latency_ms"]["p50"] <= out["latency_ms"]["p99"]
    # Killed and restarted: back once the group let the dead member go (its session timeout,
    # counted from its last heartbeat) and the restarted worker caught up from its own store.
    assert 0 < out["recovery_s"] < 2 * kafka_settings.session_timeout_s + 60
