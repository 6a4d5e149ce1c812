"""The bad-input corpus: malformed events per topic, each with the reason it must be refused.

Each case is (name, topic, key, raw value, expected fragment of the dead-letter error).
`tests/badinput/test_corpus.py` sends them between valid events on the real broker.
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.factories import catalog_entry, sale, scan


def j(d: Any) -> bytes:
    return orjson.dumps(d)


def without(d: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != field}


BadCase = tuple[str, str, str | None, bytes | None, str]

SALES: list[BadCase] = [
    ("invalid json", "pos.sales", "S9:X", b"{\"event_id\": ", "invalid JSON"),
    ("json array", "pos.sales", "S9:X", b"[1,2,3]", "expected a JSON object"),
    ("json string", "pos.sales", "S9:X", b"\"hello\"", "expected a JSON object"),
    ("empty value", "pos.sales", "S9:X", b"", "empty value"),
    ("binary garbage", "pos.sales", "S9:X", bytes(range(256)), "invalid JSON"),
    ("qty as string", "pos.sales", "S9:X", j(sale("S9", "X", qty="2")), "qty"),
    ("qty float", "pos.sales", "S9:X", j(sale("S9", "X", qty=1.5)), "qty"),
    ("qty zero", "pos.sales", "S9:X", j(sale("S9", "X", qty=0)), "qty"),
    ("qty negative", "pos.sales", "S9:X", j(sale("S9", "X", qty=-3)), "qty"),
    ("qty huge", "pos.sales", "S9:X", j(sale("S9", "X", qty=10**12)), "qty"),
    ("missing event_id", "pos.sales", "S9:X", j(without(sale("S9", "X"), "event_id")), "event_id"),
    ("missing ts", "pos.sales", "S9:X", j(without(sale("S9", "X"), "ts")), "ts"),
    ("missing qty", "pos.sales", "S9:X", j(without(sale("S9", "X"), "qty")), "qty"),
    ("unparseable ts", "pos.sales", "S9:X", j(sale("S9", "X", ts="27/11/2026 9am")), "unparseable"),
    ("naive ts", "pos.sales", "S9:X", j(sale("S9", "X", ts="2026-11-27T09:00:00")), "timezone"),
    ("far past ts", "pos.sales", "S9:X", j(sale("S9", "X", ts="1999-01-01T00:00:00Z")), "outside"),
    ("far future ts", "pos.sales", "S9:X", j(sale("S9", "X", ts="2999-01-01T00:00:00Z")), "outside"),
    ("ts as epoch number", "pos.sales", "S9:X", j(sale("S9", "X", ts=1764234000)), "ts"),
    ("store with colon", "pos.sales", "S9:X", j(sale("S9:1", "X")), "store_id"),
    ("sku with control chars", "pos.sales", "S9:X", j(sale("S9", "X\u0000\u0007")), "sku"),
    ("unicode sku", "pos.sales", "S9:X", j(sale("S9", "Ｘ☃")), "sku"),
    ("event_id with spaces", "pos.sales", "S9:X", j(sale("S9", "X", event_id="a b")), "event_id"),
    ("negative price", "pos.sales", "S9:X", j(sale("S9", "X", unit_price=-1.0)), "unit_price"),
    ("key mismatch", "pos.sales", "S9:Y", j(sale("S9", "X")), "does not match"),
    ("null key", "pos.sales", None, j(sale("S9", "X")), "does not match"),
    ("key wrong format", "pos.sales", "S9-X", j(sale("S9", "X")), "does not match"),
    ("oversized value", "pos.sales", "S9:X", j(sale("S9", "X", note="x" * 70_000)), "exceeds the limit"),
    ("tombstone", "pos.sales", "S9:X", None, "empty value"),
    # Issue 21's probes: values that slipped through, and one sale that moved the clock to 2100.
    ("price 1e309", "pos.sales", "S9:X", j(sale("S9", "X")).replace(b'"qty"', b'"unit_price":1e309,"qty"'),
     "invalid JSON: number is infinity"),
    ("price Infinity", "pos.sales", "S9:X", j(sale("S9", "X")).replace(b'"qty"', b'"unit_price":Infinity,"qty"'),
     "invalid JSON"),
    ("price NaN", "pos.sales", "S9:X", j(sale("S9", "X")).replace(b'"qty"', b'"unit_price":NaN,"qty"'), "invalid JSON"),
    ("sale 74 years ahead of the stream", "pos.sales", "S9:X", j(sale("S9", "X", ts="2100-12-31T00:00:00Z")),
     "far-future ts: 2100-12-31T00:00:00Z"),
]
SCANS: list[BadCase] = [
    ("unknown kind", "backroom.scans", "S9:X", j(scan("teleport", 3, "S9", "X")), "kind"),
    ("unknown location", "backroom.scans", "S9:X", j(scan("count", 3, "S9", "X", location="roof")), "location"),
    ("receive zero", "backroom.scans", "S9:X", j(scan("receive", 0, "S9", "X")), ">= 1"),
    ("move negative", "backroom.scans", "S9:X", j(scan("move_to_shelf", -4, "S9", "X")), ">= 1"),
    ("count negative", "backroom.scans", "S9:X", j(scan("count", -1, "S9", "X")), ">= 0"),
    ("adjust zero", "backroom.scans", "S9:X", j(scan("adjust", 0, "S9", "X")), "non-zero"),
    ("scan qty huge", "backroom.scans", "S9:X", j(scan("receive", 10**7, "S9", "X")), "qty"),
    ("scan missing kind", "backroom.scans", "S9:X", j(without(scan("count", 1, "S9", "X"), "kind")), "kind"),
    ("scan kind null", "backroom.scans", "S9:X", j(scan(None, 1, "S9", "X")), "kind"),  # type: ignore[arg-type]
    ("scan bad utf8", "backroom.scans", "S9:X", b"{\"kind\": \"\xff\xfe\"}", "invalid JSON"),
    ("scan 74 years ahead of the stream", "backroom.scans", "S9:X",
     j(scan("receive", 1, "S9", "X", ts="2100-12-31T00:00:00Z")), "far-future ts"),
]
CATALOG: list[BadCase] = [
    ("catalog missing fields", "catalog.skus", "*:X", j({"sku": "X"}), "name"),
    ("catalog zero capacity", "catalog.skus", "*:X", j(catalog_entry("X", shelf_capacity=0)), "shelf_capacity"),
    ("catalog key mismatch", "catalog.skus", "*:Y", j(catalog_entry("X")), "must be"),
    ("catalog key without store", "catalog.skus", "X", j(catalog_entry("X")), "must be"),
    ("catalog min above capacity", "catalog.skus", "*:X", j(catalog_entry("X", shelf_capacity=10, min_shelf_qty=12)),
     "min_shelf_qty 12 is above shelf_capacity 10"),
    ("catalog cost 1e309", "catalog.skus", "*:X", j(catalog_entry("X")).replace(b'"sku"', b'"unit_cost":1e309,"sku"'),
     "invalid JSON"),
]
CORPUS: list[BadCase] = SALES + SCANS + CATALOG
