"""`backroom bench soak` end to end at a tiny size, on the session broker.

    pytest tests/integration/test_soak_bench.py

The soak's figures come from the real machine; this only checks that the benchmark runs
through (its lag probe watches the topics the worker really consumes, the restarted worker
recovers its keys and takes a new event) and reports every documented field.
"""

from __future__ import annotations

import asyncio

import pytest

from backroom.settings import Settings
from bench.soak import SoakConfig, bench_soak

pytestmark = pytest.mark.integration


def test_a_small_soak_drains_restarts_and_reports_every_field(kafka_settings: Settings) -> None:
    cfg = SoakConfig(minutes=0.15, rate=100, keys=300, stores=3, sample_s=1.0, drain_timeout_s=90)
    out = asyncio.run(bench_soak(kafka_settings, cfg))
    for field in ("minutes", "rate_eps", "rss_mb", "lag_max", "recovery_s"):
        assert field in out
    assert set(out["rss_mb"]) == {"start", "end", "max"}
    assert out["drain_s"] is not None, out  # the worker caught up with the load
    assert out["recovery_s"] is not None and out["recovery_s"] > 0, out
    assert out["recovery_changelog_records"] >= cfg.keys  # every key has a changelog record
    assert out["events"] > 0 and out["lag_end"] >= 0
    # The run's topics (sources, changelogs, Faust's internals) are gone from the broker.
    left = asyncio.run(topics_named(kafka_settings, out["topic_prefix"], out["topic_prefix"].rstrip(".") + "-"))
    assert left == [], left


async def topics_named(settings: Settings, *prefixes: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(prefixes)]
    finally:
        await admin.close()

