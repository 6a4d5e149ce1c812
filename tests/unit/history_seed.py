"""A small, hand-checkable history for the ask and history tests.

    from tests.unit.history_seed import seed_history
    store = seed_history(HistoryStore(tmp_path / "h.duckdb"))

Event time: the latest inventory state is 2026-11-27 15:00 UTC (a Friday); the latest sales day
is 2026-11-27, the week starts Monday 2026-11-23. Expected answers are written next to the data.
"""

from __future__ import annotations

import itertools
from typing import Any

from backroom.history import HistoryStore

_offsets = itertools.count()


def _state(ts: str, store: str, sku: str, shelf: int, back: int, cap: int, mn: int, dph: float,
           h_shelf: float | None, h_stock: float | None, category: str,
           vision: float | None = None) -> dict[str, Any]:
    return {
        "ts": ts, "store_id": store, "sku": sku, "shelf_qty": shelf, "backroom_qty": back,
        "shelf_capacity": cap, "min_shelf_qty": mn, "demand_per_hour": dph,
        "hours_to_shelf_out": h_shelf, "hours_to_stockout": h_stock, "category": category,
        **({"vision_fill": vision} if vision is not None else {}),
    }


T = "2026-11-27T15:00:00Z"
STATES = [
    # An older MILK state that the latest one (below) must hide.
    _state("2026-11-27T10:00:00Z", "S001", "MILK-1L", 30, 40, 36, 8, 2.0, 15, 35, "Dairy"),
    # Lost sales yesterday (2026-11-26): S002 CHIPS-175 shelf empty from 18:00 (6 h x 0.5 = 3.0
    # units, catalog unit_cost 2.0 -> 6.0); S001 COFFEE-500 empty from 20:00 (4 h x 0.5 = 2.0
    # units at its sale price 8.0 -> 16.0). Today to 15:00: 15 h x 0.5 = 7.5 units each.
    _state("2026-11-26T06:00:00Z", "S001", "COFFEE-500", 5, 0, 18, 4, 0.5, 10.0, 10.0, "Coffee & Tea"),
    _state("2026-11-26T18:00:00Z", "S002", "CHIPS-175", 0, 12, 48, 12, 0.5, 0.0, 96.0, "Snacks"),
    _state("2026-11-26T20:00:00Z", "S001", "COFFEE-500", 0, 0, 18, 4, 0.5, 0.0, 0.0, "Coffee & Tea"),
    # restock today (below min, backroom has stock); at risk within 48 h
    _state(T, "S001", "MILK-1L", 4, 40, 36, 8, 2.0, 2.0, 22.0, "Dairy"),
    # fine today (15 h > 9 h left today); at risk within 48 h
    _state(T, "S001", "BREAD-WHT", 15, 10, 20, 5, 1.0, 15.0, 25.0, "Bakery"),
    # out of stock (shelf and backroom empty)
    _state(T, "S001", "COFFEE-500", 0, 0, 18, 4, 0.5, 0.0, 0.0, "Coffee & Tea"),
    _state(T, "S001", "EGGS-10", 10, 2, 24, 6, 0.2, 50.0, 60.0, "Dairy"),
    # at risk (10 h) but nothing to restock from (backroom 0)
    _state(T, "S002", "MILK-1L", 10, 0, 36, 8, 1.0, 10.0, 10.0, "Dairy"),
    # restock (open RESTOCK_SHELF alert)
    _state(T, "S002", "EGGS-10", 3, 20, 24, 6, 0.1, 30.0, 230.0, "Dairy"),
    # empty shelf, backroom full: restock, and an "empty shelves" answer
    _state(T, "S002", "CHIPS-175", 0, 12, 48, 12, 0.5, 0.0, 24.0 * 4, "Snacks"),
    # phantom stock: records say 20 on the shelf, the camera sees nothing
    _state(T, "S003", "WATER-6PK", 20, 30, 30, 6, 0.2, 100.0, 250.0, "Beverages", vision=0.0),
    _state(T, "S003", "CHIPS-175", 30, 50, 48, 12, 0.3, 100.0, 266.0, "Snacks"),
]


def _alert(alert_id: str, ts: str, store: str, sku: str, typ: str, status: str, severity: str,
           action: str) -> dict[str, Any]:
    return {
        "alert_id": alert_id, "ts": ts, "store_id": store, "sku": sku, "type": typ,
        "status": status, "severity": severity, "message": f"{typ} {store}:{sku}",
        "action": action, "evidence": {"seeded": True},
    }


ALERTS = [
    _alert("a1", "2026-11-27T12:00:00Z", "S001", "COFFEE-500", "OUT_OF_STOCK", "open", "critical", "order 12 units"),
    _alert("a2", "2026-11-27T13:00:00Z", "S002", "EGGS-10", "RESTOCK_SHELF", "open", "medium", "move 21 units to the shelf"),
    _alert("a3", "2026-11-27T11:00:00Z", "S003", "WATER-6PK", "PHANTOM_STOCK", "open", "high", "recount the shelf"),
    _alert("a4", "2026-11-27T08:00:00Z", "S003", "CHIPS-175", "REORDER", "open", "medium", "order 48 units"),
    _alert("a4", "2026-11-27T14:00:00Z", "S003", "CHIPS-175", "REORDER", "resolved", "medium", "none"),
    _alert("a5", "2026-11-27T09:00:00Z", "S001", "EGGS-10", "REORDER", "open", "high", "order 24 units"),
    _alert("a6", "2026-11-27T07:00:00Z", "S002", "MILK-1L", "REORDER", "open", "high", "order 24 units"),
    _alert("a6", "2026-11-27T14:30:00Z", "S002", "MILK-1L", "REORDER", "update", "critical", "order 36 units"),
    _alert("a7", "2026-11-27T06:00:00Z", "S001", "MILK-1L", "RESTOCK_SHELF", "open", "low", "move 10 units"),
    _alert("a7", "2026-11-27T06:30:00Z", "S001", "MILK-1L", "RESTOCK_SHELF", "resolved", "low", "none"),
    _alert("a8", "2026-11-27T14:00:00Z", "S001", "BREAD-WHT", "CHECK_SHELF", "open", "medium", "check the shelf"),
    _alert("a9", "2026-11-27T14:10:00Z", "S002", "MILK-1L", "TRANSFER", "open", "medium", "transfer 10 units from S001"),
]

_sale_ids = itertools.count(1)


def _sale(ts: str, store: str, sku: str, qty: int) -> dict[str, Any]:
    return {"event_id": f"seed-{next(_sale_ids)}", "ts": ts, "store_id": store, "sku": sku, "qty": qty}


SALES = [
    # today (2026-11-27): MILK-1L 10, CHIPS-175 6, BREAD-WHT 4, COFFEE-500 1; S001: MILK 8, BREAD 4, COFFEE 1
    _sale("2026-11-27T08:00:00Z", "S001", "MILK-1L", 5),
    _sale("2026-11-27T09:00:00Z", "S001", "MILK-1L", 3),
    _sale("2026-11-27T09:30:00Z", "S002", "MILK-1L", 2),
    _sale("2026-11-27T10:00:00Z", "S001", "BREAD-WHT", 4),
    _sale("2026-11-27T11:00:00Z", "S002", "CHIPS-175", 6),
    {**_sale("2026-11-27T14:59:00Z", "S001", "COFFEE-500", 1), "unit_price": 8.0},
    # yesterday: WATER-6PK 20, MILK-1L 1
    _sale("2026-11-26T12:00:00Z", "S003", "WATER-6PK", 20),
    _sale("2026-11-26T13:00:00Z", "S001", "MILK-1L", 1),
    # Monday of the same week: EGGS-10 30
    _sale("2026-11-23T10:00:00Z", "S002", "EGGS-10", 30),
    # the week before: must not count in "this week"
    _sale("2026-11-20T10:00:00Z", "S002", "BREAD-WHT", 99),
]

CATALOG = [
    ("*:MILK-1L", {"sku": "MILK-1L", "name": "Milk 1 l", "category": "Dairy", "shelf_capacity": 36,
                   "min_shelf_qty": 8, "lead_time_hours": 48.0, "case_pack": 12}),
    ("*:WATER-6PK", {"sku": "WATER-6PK", "name": "Water 6 pack", "category": "Beverages",
                     "shelf_capacity": 30, "min_shelf_qty": 6, "lead_time_hours": 96.0, "case_pack": 4}),
    ("*:CHIPS-175", {"sku": "CHIPS-175", "name": "Chips 175 g", "category": "Snacks", "shelf_capacity": 48,
                     "min_shelf_qty": 12, "lead_time_hours": 72.0, "case_pack": 12, "unit_cost": 2.0}),
]


def _rows(values: list[dict[str, Any]], key_fields: tuple[str, str] = ("store_id", "sku")) -> list[tuple[int, int, str, dict[str, Any]]]:
    return [(0, next(_offsets), f"{v[key_fields[0]]}:{v[key_fields[1]]}", v) for v in values]


def seed_history(store: HistoryStore) -> HistoryStore:
    store.insert_batch("inventory.state", _rows(STATES))
    store.insert_batch("alerts", _rows(ALERTS))
    store.insert_batch("pos.sales", _rows(SALES))
    store.insert_batch("catalog.skus", [(0, next(_offsets), k, v) for k, v in CATALOG])
    store.release()
    return store
