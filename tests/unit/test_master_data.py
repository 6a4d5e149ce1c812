"""Catalog and planogram validation (`backroom.master_data`), no Kafka.

    pytest tests/unit/test_master_data.py
"""

from __future__ import annotations

import orjson

from backroom.master_data import CatalogProcessor, PlanogramProcessor
from backroom.processing import RawMessage
from backroom.records import Planogram, PlanogramSlot
from backroom.settings import Settings
from tests.factories import catalog_entry


def msg(topic: str, key: bytes | None, value: bytes | None) -> RawMessage:
    return RawMessage(topic, 0, 7, key, value)


def test_catalog_entries_for_one_store_or_all_stores_are_stored(settings: Settings) -> None:
    proc = CatalogProcessor(settings)
    for key in (b"*:A", b"S1:A"):
        result = proc.process(msg("catalog.skus", key, orjson.dumps(catalog_entry("A", shelf_capacity=30))))
        assert result.dead is None and result.key == key.decode()
        assert result.value is not None and result.value["shelf_capacity"] == 30


def test_a_catalog_tombstone_deletes_and_bad_entries_are_dead_lettered(settings: Settings) -> None:
    proc = CatalogProcessor(settings)
    gone = proc.process(msg("catalog.skus", b"*:A", None))
    assert (gone.key, gone.value, gone.dead) == ("*:A", None, None)
    wrong_key = proc.process(msg("catalog.skus", b"S1:B", orjson.dumps(catalog_entry("A"))))
    assert wrong_key.value is None and wrong_key.dead is not None
    assert "must be '{store_id}:A' or '*:A'" in wrong_key.dead.error
    assert wrong_key.dead.offset == 7 and wrong_key.dead.source_topic == "catalog.skus"
    invalid = proc.process(msg("catalog.skus", b"*:A", b'{"sku": "A"}'))
    assert invalid.value is None and invalid.dead is not None and "CatalogSku" in invalid.dead.error


def test_planograms_must_be_keyed_by_store_and_camera(settings: Settings) -> None:
    proc = PlanogramProcessor(settings)
    pg = Planogram(store_id="S1", camera_id="cam1",
                   slots=[PlanogramSlot(sku="A", box=[0.0, 0.0, 0.5, 0.5], facings=2)])
    ok = proc.process(msg("catalog.planograms", b"S1:cam1", pg.to_json()))
    assert ok.dead is None and ok.value == pg.to_dict()
    wrong = proc.process(msg("catalog.planograms", b"S1:cam2", pg.to_json()))
    assert wrong.value is None and wrong.dead is not None and "store_id:camera_id" in wrong.dead.error
    empty = proc.process(msg("catalog.planograms", b"S1:cam1", None))
    assert empty.dead is not None and "tombstone" in empty.dead.error
