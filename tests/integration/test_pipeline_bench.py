"""`backroom bench pipeline` end to end at a tiny size, on the session broker.

    pytest tests/integration/test_pipeline_bench.py

The figures in docs/benchmarks.md come from the real machine at full size; this checks that the
benchmark runs through its phases (raw consume, no-op Faust, bulk no-op, worker, latency) and reports
every documented field with values that can only come from events that really went through.
"""

from __future__ import annotations

import asyncio

import pytest

from backroom.settings import Settings
from bench.pipeline import BenchConfig, bench_pipeline

pytestmark = pytest.mark.integration


def test_a_small_pipeline_bench_reports_every_field(kafka_settings: Settings) -> None:
    cfg = BenchConfig(events=3000, keys=50, rate=200.0, latency_seconds=2.0, warmup_seconds=1.0)
    out = asyncio.run(bench_pipeline(kafka_settings, cfg))
    for field in ("events", "raw_consume_eps", "worker_eps", "ratio", "latency_ms", "rate_eps"):
        assert field in out, out
    assert out["events"] == 3000
    assert out["raw_consume_eps"] > 0 and out["worker_eps"] > 0 and out["faust_noop_eps"] > 0
    assert out["bulk_noop_eps"] > 0
    assert out["bulk_noop_ratio"] == pytest.approx(out["bulk_noop_eps"] / out["raw_consume_eps"], abs=1e-3)
    assert out["ratio"] == pytest.approx(out["worker_eps"] / out["raw_consume_eps"], abs=1e-3)
    # Only the scored events (after the warm-up) have latencies; each got its state.
    assert out["latency_events"] == 400, out
    assert 0 < out["latency_ms"]["p50"] <= out["latency_ms"]["p99"] < 30_000
    assert len(out["latency_p99_by_5s"]) == 1
