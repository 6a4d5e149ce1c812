"""Event factories for tests: valid contract events with overridable fields.

    from tests.factories import sale, scan
    sale(qty=3)  →  a pos.sales dict with a fresh event_id
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def ts(minutes: float = 0) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def sale(store_id: str = "S1", sku: str = "A", qty: int = 1, minutes: float = 0, **kw: Any) -> dict[str, Any]:
    return {"event_id": f"sale-{next(_ids)}", "ts": ts(minutes), "store_id": store_id, "sku": sku,
            "qty": qty, **kw}


def scan(kind: str, qty: int, store_id: str = "S1", sku: str = "A", minutes: float = 0,
         location: str | None = None, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": f"scan-{next(_ids)}", "ts": ts(minutes), "store_id": store_id, "sku": sku,
          "kind": kind, "qty": qty, **kw}
    if location:
        ev["location"] = location
    return ev


def catalog_entry(sku: str = "A", **kw: Any) -> dict[str, Any]:
    return {"sku": sku, "name": f"Item {sku}", "category": "Snacks", "shelf_capacity": 20,
            "min_shelf_qty": 5, "lead_time_hours": 24.0, "case_pack": 6, **kw}


def key(ev: dict[str, Any]) -> str:
    return f"{ev['store_id']}:{ev['sku']}"
