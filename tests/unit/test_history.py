"""HistoryStore: schema, idempotent batches, views (no Kafka).

    pytest tests/unit/test_history.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backroom.history import TABLES, HistoryBusy, HistoryStore
from tests.factories import catalog_entry, sale, scan
from tests.unit.history_seed import seed_history


def rows_of(events: list[dict], start: int = 0) -> list[tuple[int, int, str, dict]]:  # type: ignore[type-arg]
    return [(0, start + i, f"{e['store_id']}:{e['sku']}", e) for i, e in enumerate(events)]


def test_insert_same_batch_twice_adds_nothing(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.duckdb")
    batch = rows_of([sale(qty=i + 1) for i in range(50)])
    assert store.insert_batch("pos.sales", batch).inserted == 50
    assert store.insert_batch("pos.sales", batch).inserted == 0
    # The same events redelivered at other offsets (a producer retry) are still one row each.
    assert store.insert_batch("pos.sales", [(1, 1000 + o, k, v) for _, o, k, v in batch]).inserted == 0
    assert store.count("sales") == 50


def test_offset_keyed_tables_are_idempotent_too(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.duckdb")
    seed_history(store)
    before = store.counts()
    seed_history(store)  # fresh offsets from the seed's counter: new Kafka records
    again = store.counts()
    assert again["sales"] == before["sales"]  # event_id keyed
    assert again["alerts"] == 2 * before["alerts"]  # offset keyed: different offsets, new rows
    # ...but replaying the very same Kafka records adds nothing
    from tests.unit.history_seed import ALERTS

    rows = [(3, i, "k", a) for i, a in enumerate(ALERTS)]
    assert store.insert_batch("alerts", rows).inserted == len(ALERTS)
    assert store.insert_batch("alerts", rows).inserted == 0


def test_duplicates_inside_one_batch(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.duckdb")
    ev = scan("receive", 5)
    result = store.insert_batch("backroom.scans", [(0, 1, "S1:A", ev), (0, 2, "S1:A", ev)])
    assert result.inserted == 1
    assert store.count("scans") == 1


def test_invalid_values_are_skipped_and_counted(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.duckdb")
    bad = [sale(qty=0), {**sale(), "ts": "yesterday"}, {"not": "a sale"}, sale()]
    result = store.insert_batch("pos.sales", [*rows_of(bad[:2] + bad[3:]), (0, 99, None, bad[2])])
    assert (result.inserted, result.invalid) == (1, 3)


def test_prefixed_topics_map_to_tables(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.duckdb")
    store.insert_batch("t1234.pos.sales", rows_of([sale()]), topic_name="t1234.pos.sales")
    _, rows = store.query("SELECT kafka_topic FROM sales")
    assert rows == [("t1234.pos.sales",)]
    with pytest.raises(KeyError):
        store.insert_batch("weather", [])


def test_catalog_store_comes_from_the_key(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.duckdb")
    store.insert_batch("catalog.skus", [(0, 1, "*:A", catalog_entry("A")), (0, 2, "S9:A", catalog_entry("A", shelf_capacity=50)),
                                        (0, 3, "*:A", catalog_entry("A", shelf_capacity=30))])
    _, rows = store.query("SELECT store_id, shelf_capacity FROM catalog_latest ORDER BY store_id")
    assert rows == [("*", 30), ("S9", 50)]


def test_views_latest_state_and_open_alerts(tmp_path: Path) -> None:
    store = seed_history(HistoryStore(tmp_path / "h.duckdb"))
    _, rows = store.query("SELECT shelf_qty FROM inventory_latest WHERE store_id = 'S001' AND sku = 'MILK-1L'")
    assert rows == [(4,)]  # the 15:00 state, not the 10:00 one
    _, rows = store.query("SELECT alert_id, status, severity FROM open_alerts ORDER BY alert_id")
    assert rows == [("a1", "open", "critical"), ("a2", "open", "medium"), ("a3", "open", "high"),
                    ("a5", "open", "high"), ("a6", "update", "critical"), ("a8", "open", "medium"),
                    ("a9", "open", "medium")]


def test_every_topic_has_a_table(tmp_path: Path) -> None:
    from backroom.records import TOPIC_RECORDS

    assert {t.topic for t in TABLES} == set(TOPIC_RECORDS)
    store = HistoryStore(tmp_path / "h.duckdb")
    assert set(store.counts()) == {t.name for t in TABLES}


def test_reader_waits_then_reports_busy_writer(tmp_path: Path) -> None:
    """A second process holding the file makes readers fail clearly, not crash."""
    import subprocess
    import sys

    path = tmp_path / "h.duckdb"
    HistoryStore(path).connection()  # create
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(HistoryBusy):
            HistoryStore(path, lock_timeout_s=0.3).query("SELECT 1")
    finally:
        holder.kill()
        holder.wait()
