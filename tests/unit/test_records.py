"""Contract records: valid events decode, each kind of bad input gets a clear reason."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from backroom.records import CatalogSku, InvalidEvent, Planogram, Sale, Scan, decode, json_schemas
from tests.factories import catalog_entry, sale, scan


def raw(d: dict) -> bytes:
    return orjson.dumps(d)


def test_valid_sale_decodes_with_aware_ts() -> None:
    s = decode(Sale, raw(sale(qty=3)))
    assert s.qty == 3 and s.ts.tzinfo is not None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (raw(sale(qty="3")), "qty"),
        (raw(sale(qty=0)), "qty"),
        (raw(sale(qty=-2)), "qty"),
        (raw(sale(qty=10**9)), "qty"),
        (raw({k: v for k, v in sale().items() if k != "sku"}), "sku"),
        (raw(sale(ts="yesterday at noon")), "unparseable timestamp"),
        (raw(sale(ts="2026-11-27T09:00:00")), "timezone"),
        (raw(sale(ts="1970-01-01T00:00:00Z")), "outside"),
        (raw(sale(store_id="S1:evil")), "store_id"),
        (raw(sale(event_id="")), "event_id"),
        (None, "tombstone"),
        (b"", "empty value"),
    ],
)
def test_bad_sales_are_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        decode(Sale, value)
    assert reason in err.value.reason


def test_oversized_value_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidEvent, match="exceeds the limit"):
        decode(Sale, b"{" + b" " * 70_000 + b"}", max_bytes=65536)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (scan("teleport", 3), "kind"),
        (scan("count", 3, location="attic"), "location"),
        (scan("receive", 0), "qty must be >= 1"),
        (scan("count", -1), "qty must be >= 0"),
        (scan("adjust", 0), "non-zero"),
    ],
)
def test_bad_scans(event: dict, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        decode(Scan, raw(event))
    assert reason in err.value.reason


def test_scan_location_defaults_to_backroom() -> None:
    assert decode(Scan, raw(scan("count", 4))).location == "backroom"


def test_planogram_box_must_be_inside_the_frame() -> None:
    good = {"store_id": "S1", "camera_id": "c1", "slots": [{"sku": "A", "box": [0.1, 0.1, 0.5, 0.4], "facings": 3}]}
    assert decode(Planogram, raw(good)).slots[0].facings == 3
    bad = {**good, "slots": [{"sku": "A", "box": [0.5, 0.1, 0.2, 0.4], "facings": 3}]}
    with pytest.raises(InvalidEvent, match="box"):
        decode(Planogram, raw(bad))


def test_catalog_and_schemas_cover_every_topic() -> None:
    assert decode(CatalogSku, raw(catalog_entry())).shelf_capacity == 20
    schemas = json_schemas()
    assert {"pos.sales", "backroom.scans", "camera.frames", "alerts", "dead-letter", "inventory.state"} <= set(schemas)
    assert "qty" in schemas["pos.sales"]["required"]


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert decode(Sale, raw(sale(loyalty_id="X1"))).qty == 1


def test_validated_is_model_validate() -> None:
    # `validated` skips pydantic's wrapper, not its checks: same records, same errors.
    from backroom.records import InventoryState, validated

    good = {"ts": decode(Sale, raw(sale())).ts, "store_id": "S1", "sku": "A", "shelf_qty": 1,
            "backroom_qty": 0, "shelf_capacity": 5, "demand_per_hour": 1, "version": 2}
    assert validated(InventoryState, good) == InventoryState.model_validate(good)
    assert validated(InventoryState, good).to_json() == InventoryState.model_validate(good).to_json()
    for bad in ({**good, "shelf_qty": "1"}, {**good, "store_id": "S:1"}, {k: v for k, v in good.items() if k != "ts"}):
        with pytest.raises(ValidationError) as fast:
            validated(InventoryState, bad)
        with pytest.raises(ValidationError) as slow:
            InventoryState.model_validate(bad)
        assert fast.value.errors() == slow.value.errors()


@pytest.mark.parametrize(
    "value",
    [
        b'{"event_id":"p1","ts":"2026-11-27T09:00:00Z","store_id":"S1","sku":"A","qty":1,"unit_price":1e309}',
        b'{"event_id":"p1","ts":"2026-11-27T09:00:00Z","store_id":"S1","sku":"A","qty":1,"unit_price":Infinity}',
        b'{"event_id":"p1","ts":"2026-11-27T09:00:00Z","store_id":"S1","sku":"A","qty":1,"unit_price":NaN}',
    ],
)
def test_non_finite_price_is_refused(value: bytes) -> None:
    # orjson refuses the Infinity/NaN literals; 1e309 parses to inf and must be refused by the record.
    with pytest.raises(InvalidEvent):
        decode(Sale, value)
    with pytest.raises(ValidationError, match="unit_price"):
        Sale.model_validate_json(value)


@pytest.mark.parametrize("price", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_refused_in_python_too(price: float) -> None:
    with pytest.raises(ValidationError, match="finite"):
        Sale.model_validate(sale(unit_price=price) | {"ts": "2026-11-27T09:00:00Z"}, strict=False)
    with pytest.raises(ValidationError, match="finite"):
        CatalogSku.model_validate(catalog_entry(lead_time_hours=price))


def test_catalog_min_shelf_qty_must_fit_the_shelf() -> None:
    with pytest.raises(ValidationError, match="min_shelf_qty 30 is above shelf_capacity 20"):
        CatalogSku.model_validate(catalog_entry(shelf_capacity=20, min_shelf_qty=30))
    assert CatalogSku.model_validate(catalog_entry(shelf_capacity=20, min_shelf_qty=20)).min_shelf_qty == 20
