"""The DuckDB history sink on the real embedded broker: batched, committed, idempotent.

    pytest tests/integration/test_history_sink.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backroom.history import HistoryStore
from backroom.settings import Settings
from consumers.duckdb_sink import run_sink
from streams.topics import CONTRACT_TOPICS, ensure_topics
from tests.factories import catalog_entry, key, sale, scan, ts
from tests.unit.history_seed import ALERTS

pytestmark = pytest.mark.integration

RAW = Path(__file__).resolve().parents[2] / "data" / "raw"


def messages() -> list[tuple[str, str | None, Any]]:
    sales = [sale(store_id=f"S{i % 3}", sku=f"K{i % 7}", qty=1 + i % 4, minutes=i) for i in range(120)]
    scans = [scan("receive", 10, store_id="S0", sku=f"K{i}", minutes=i) for i in range(7)]
    state = {"ts": ts(5), "store_id": "S0", "sku": "K1", "shelf_qty": 3, "backroom_qty": 9,
             "shelf_capacity": 20, "demand_per_hour": 1.5}
    return [
        ("catalog.skus", "*:K1", catalog_entry("K1")),
        *(("pos.sales", key(e), e) for e in sales),
        *(("backroom.scans", key(e), e) for e in scans),
        *(("alerts", f"{a['store_id']}:{a['sku']}", a) for a in ALERTS),
        ("inventory.state", "S0:K1", state),
        ("pos.sales", "S0:K1", b"{not json"),  # the worker's to dead-letter; the sink skips it
        ("dead-letter", "S0:K1", {"source_topic": "pos.sales", "partition": 0, "offset": 1,
                                  "key": "S0:K1", "error": "invalid JSON", "raw": "{not json"}),
    ]


async def test_sink_is_idempotent_on_the_real_broker(kafka_settings: Settings, tmp_path: Path) -> None:
    from tests.helpers import produce

    settings = kafka_settings
    await ensure_topics(settings, CONTRACT_TOPICS, changelogs=False)
    msgs = messages()
    await produce(settings, msgs)
    store = HistoryStore(tmp_path / "history.duckdb")

    first = await run_sink(settings, store, once=True)
    expected = {"sales": 120, "scans": 7, "alerts": len(ALERTS), "inventory_state": 1, "catalog": 1, "dead_letter": 1}
    counts = store.counts()
    assert {k: counts[k] for k in expected} == expected, (counts, first)
    assert first.undecodable == 1

    # Consume everything again from the beginning under a new group (a reset, a crash before
    # the commit, a second sink): no duplicate rows.
    again = await run_sink(settings, store, once=True, group_id=f"{settings.app_id}-history-again")
    assert again.consumed == first.consumed
    assert again.inserted == 0
    assert store.counts() == counts

    # The same sales redelivered at new offsets (a producer retry upstream) are still one row.
    await produce(settings, [m for m in msgs if m[0] == "pos.sales" and isinstance(m[2], dict)])
    third = await run_sink(settings, store, once=True)  # the original group: only the new records
    assert third.consumed == 120 and third.inserted == 0
    assert store.count("sales") == 120

    # What the sink wrote answers questions.
    _, rows = store.query("SELECT count(*) FROM open_alerts")
    assert rows == [(7,)]  # the seed's open alerts (tests/unit/history_seed.py)


async def test_clean_replay_sink_roundtrip(kafka_settings: Settings, tmp_path: Path) -> None:
    """Raw CSV -> clean -> replay into Kafka -> sink -> the same rows in DuckDB."""
    from backroom.cleaning import clean
    from producers.replay import replay

    files = [
        Path(clean(RAW / f"{n}.csv", tmp_path / "p", tz="Europe/Berlin").outputs["data"])
        for n in ("products", "sales", "scans")
    ]
    await ensure_topics(kafka_settings, CONTRACT_TOPICS, changelogs=False)
    stats = await replay(files, kafka_settings, 0)
    assert stats.produced == {"catalog.skus": 8, "pos.sales": 12, "backroom.scans": 11}
    await replay(files, kafka_settings, 0)  # replaying twice: same event ids
    store = HistoryStore(tmp_path / "h.duckdb")
    await run_sink(kafka_settings, store, once=True)
    counts = store.counts()
    assert (counts["sales"], counts["scans"]) == (12, 11)
    assert counts["catalog"] == 16  # offset-keyed: each replay is new records...
    _, rows = store.query("SELECT count(*) FROM catalog_latest")
    assert rows == [(8,)]  # ...and the latest per key is what counts
