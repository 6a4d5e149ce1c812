"""Cross-store transfers: when a store will run out before its supplier order arrives and another
store holds stock above its own 48 h need, suggest moving the difference (`TRANSFER`).

    planner = TransferPlanner(StoreNetwork.from_records(stores), need_hours=48)
    for t in planner.suggest(states):        # the latest inventory.state per store×SKU
        print(t.to_store, t.from_store, t.sku, t.qty, t.hours_saved)

Tests: `pytest tests/unit/test_transfers.py`; docs/floor.md. Plain logic: no Kafka. The worker
(streams/transfers.py) keeps one `TransferBoard` per SKU: each store's latest position, from the
`inventory.by-sku` repartition topic, planned again on every new position.

- `catalog.stores` (a compacted topic, contract addition) says how many hours a transfer takes
  between two stores (`transfer_hours`, per destination; symmetric when only one side says).
  Stores with no entry for each other do not transfer.
- A store *needs* a transfer for a SKU when an order is on its way (`supplier_eta_hours`) and
  its stock (shelf + backroom) runs out (`hours_to_stockout`) before it lands — and a transfer
  would arrive first. Without an order on its way it is an ordering matter (REORDER).
- A store can *give* what it holds above its own need over `need_hours` (48 h at its mean
  forecast rate: its lead-time demand over its lead time, else `demand_per_hour`), or over its
  own lead time when that is longer, plus its safety stock and its shelf minimum.
- Quantity: the receiver's demand until the supplier delivers less its stock, at most what the
  giver can spare; hours saved: from the stockout (or the transfer's arrival, if later) to the
  delivery, the hours the receiver would have stood empty.
  The giver with the shortest transfer time wins, then the most to spare.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backroom.alerts import alert_id
from backroom.records import Alert, validated


@dataclass(frozen=True)
class Transfer:
    sku: str
    from_store: str
    to_store: str
    qty: int
    transfer_hours: float
    hours_saved: float
    runs_out_in: float
    supplier_in: float

    def evidence(self) -> dict[str, Any]:
        return {"from_store": self.from_store, "to_store": self.to_store, "qty": self.qty,
                "transfer_hours": self.transfer_hours, "hours_saved": round(self.hours_saved, 2),
                "hours_to_stockout": round(self.runs_out_in, 2), "supplier_in_hours": round(self.supplier_in, 2)}


@dataclass
class StoreNetwork:
    """Transfer hours between stores, from `catalog.stores` records."""

    hours: dict[tuple[str, str], float] = field(default_factory=dict)

    @classmethod
    def from_records(cls, stores: Iterable[Mapping[str, Any]]) -> StoreNetwork:
        net = cls()
        for rec in stores:
            a = str(rec["store_id"])
            for b, h in (rec.get("transfer_hours") or {}).items():
                net.hours[(a, str(b))] = float(h)
                net.hours.setdefault((str(b), a), float(h))
        return net

    def between(self, a: str, b: str) -> float | None:
        return self.hours.get((a, b))


def _f(state: Mapping[str, Any], name: str, default: float = 0.0) -> float:
    v = state.get(name)
    return default if v is None else float(v)


class TransferPlanner:
    def __init__(self, network: StoreNetwork, need_hours: float = 48.0) -> None:
        self.network = network
        self.need_hours = need_hours

    def spare(self, state: Mapping[str, Any]) -> int:
        """Units a store can give: stock above its own need over `need_hours` (or over its own
        lead time, if longer: it could not replace them sooner), its safety stock and its shelf
        minimum. Without the lead-time part a giver 72 h from its supplier ran out in turn and
        took stock back (seed 21, 3 stores: lost sales 6 -> 26)."""
        stock = _f(state, "shelf_qty") + _f(state, "backroom_qty")
        lead, ltd = state.get("lead_time_hours"), state.get("lead_time_demand")
        rate = float(ltd) / float(lead) if ltd is not None and lead else _f(state, "demand_per_hour")
        horizon = max(self.need_hours, float(lead or 0.0))
        keep = rate * horizon + _f(state, "safety_stock") + _f(state, "min_shelf_qty")
        return max(0, math.floor(stock - keep))

    def suggest(self, states: Iterable[Mapping[str, Any]]) -> list[Transfer]:
        by_sku: dict[str, list[Mapping[str, Any]]] = {}
        for s in states:
            by_sku.setdefault(str(s["sku"]), []).append(s)
        out: list[Transfer] = []
        for sku, group in sorted(by_sku.items()):
            for recv in sorted(group, key=lambda s: str(s["store_id"])):
                t = self._for(sku, recv, group)
                if t is not None:
                    out.append(t)
        return out

    def _for(self, sku: str, recv: Mapping[str, Any], group: list[Mapping[str, Any]]) -> Transfer | None:
        runs_out = recv.get("hours_to_stockout")
        if runs_out is None:
            return None
        runs_out = float(runs_out)
        supplier = recv.get("supplier_eta_hours")
        if supplier is None:
            # No order on its way: ordering is REORDER's (and OUT_OF_STOCK's) call. A transfer
            # instead of an order only delays the order (seed 22: lost sales 54 -> 69).
            return None
        supplier_in = float(supplier)
        if runs_out >= supplier_in:
            return None  # the supplier is there first
        lead, ltd = recv.get("lead_time_hours"), recv.get("lead_time_demand")
        rate = float(ltd) / float(lead) if ltd is not None and lead else _f(recv, "demand_per_hour")
        best: tuple[float, int, Mapping[str, Any]] | None = None
        for give in group:
            if give["store_id"] == recv["store_id"]:
                continue
            hours = self.network.between(str(give["store_id"]), str(recv["store_id"]))
            if hours is None or hours >= supplier_in:
                continue
            spare = self.spare(give)
            if spare <= 0:
                continue
            if best is None or (hours, -spare) < (best[0], -best[1]):
                best = (hours, spare, give)
        if best is None:
            return None
        hours, spare, give = best
        # Enough to last until the supplier delivers (its demand until then less its stock), at
        # most what the giver can spare; it saves the hours from the stockout (or the transfer's
        # arrival, if later) to the delivery.
        start = max(runs_out, hours)
        window = supplier_in - start
        stock = _f(recv, "shelf_qty") + _f(recv, "backroom_qty")
        qty = min(spare, math.ceil(rate * supplier_in - stock))
        if window <= 0 or qty <= 0:
            return None
        return Transfer(sku, str(give["store_id"]), str(recv["store_id"]), qty, hours, window, runs_out, supplier_in)


class TransferDesk:
    """TRANSFER suggestions as alerts: one open per receiving store×SKU while it holds; resolved
    when the planner no longer suggests it (the stock arrived, or the need passed)."""

    def __init__(self, planner: TransferPlanner, reaction_hours: float = 2.0) -> None:
        self.planner = planner
        self.reaction_hours = reaction_hours
        self.open: dict[str, dict[str, Any]] = {}  # "to_store:sku" -> the open alert's fields

    def evaluate(self, states: Iterable[Mapping[str, Any]], now: datetime) -> list[Alert]:
        """`states`: the latest inventory.state per store×SKU (dicts, `unit_cost` optional;
        `supplier_eta_hours` when an order is on its way). `now`: event time."""
        states = list(states)
        by_key = {f"{s['store_id']}:{s['sku']}": s for s in states}
        out: list[Alert] = []
        wanted = {f"{t.to_store}:{t.sku}": t for t in self.planner.suggest(states)}
        for key, info in list(self.open.items()):
            if key not in wanted:
                del self.open[key]
                out.append(self._alert(info, "resolved", now, f"Resolved: {info['message']}", "none", {}))
        for key, t in wanted.items():
            if key in self.open:
                continue
            recv = by_key[key]
            rate = float(recv.get("demand_per_hour") or 0.0)
            cost = recv.get("unit_cost")
            units = round(rate * t.hours_saved, 2)
            lost = {"units": units, "value": round(units * float(cost), 2) if cost is not None else None,
                    "hours": round(t.hours_saved, 2), "price": cost,
                    "price_source": "catalog unit_cost" if cost is not None else None}
            message = (f"{t.sku} in store {t.to_store} runs out in {t.runs_out_in:.0f} h, the supplier delivers "
                       f"in {t.supplier_in:.0f} h; store {t.from_store} can spare {t.qty} ({t.transfer_hours:g} h away)")
            info = {"alert_id": alert_id(t.to_store, t.sku, "TRANSFER", now.isoformat()), "store_id": t.to_store,
                    "sku": t.sku, "message": message, "severity": "high" if t.runs_out_in <= 24 else "medium"}
            self.open[key] = info
            action = f"transfer {t.qty} units of {t.sku} from store {t.from_store} to store {t.to_store}"
            out.append(self._alert(info, "open", now, message, action, t.evidence() | {"expected_lost": lost}))
        return out

    @staticmethod
    def _alert(info: Mapping[str, Any], status: str, now: datetime, message: str, action: str,
               evidence: dict[str, Any]) -> Alert:
        return validated(Alert, {
            "alert_id": info["alert_id"], "ts": now, "store_id": info["store_id"], "sku": info["sku"],
            "type": "TRANSFER", "status": status, "severity": info["severity"], "message": message,
            "action": action, "evidence": evidence,
        })


def positions_at(positions: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Each store's latest position as the planner reads it at event time `now`: its
    `hours_to_stockout` less the position's age, and `supplier_eta_hours` from the arrival of its
    next supplier order (`supplier_eta`, ISO), when that is still ahead."""
    out = []
    for pos in positions:
        d = dict(pos)
        age = (now - datetime.fromisoformat(str(d["ts"]))) / timedelta(hours=1)
        if d.get("hours_to_stockout") is not None:
            d["hours_to_stockout"] = max(0.0, float(d["hours_to_stockout"]) - max(0.0, age))
        eta = d.pop("supplier_eta", None)
        if eta is not None:
            ahead = (datetime.fromisoformat(str(eta)) - now) / timedelta(hours=1)
            if ahead > 0:
                d["supplier_eta_hours"] = ahead
        out.append(d)
    return out


class TransferBoard:
    """One SKU across stores: each store's latest position (an `inventory.by-sku` value, as a
    dict) and the open TRANSFER suggestions; a new position plans the SKU again at event time =
    the newest position's ts. Kept as a table value (`to_dict` / `from_dict`)."""

    def __init__(self, stores: Mapping[str, dict[str, Any]] | None = None,
                 open_: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.stores: dict[str, dict[str, Any]] = dict(stores or {})
        self.open: dict[str, dict[str, Any]] = dict(open_ or {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TransferBoard:
        data = data or {}
        return cls(data.get("stores"), data.get("open"))

    def to_dict(self) -> dict[str, Any]:
        return {"stores": self.stores, "open": self.open}

    def update(self, position: Mapping[str, Any], network: StoreNetwork, need_hours: float = 48.0) -> list[Alert]:
        """Take a store's newer position (an older version of it changes nothing) and return
        the TRANSFER opens and resolutions it causes."""
        store = str(position["store_id"])
        old = self.stores.get(store)
        if old is not None and (old.get("version") or 0) > (position.get("version") or 0):
            return []
        self.stores[store] = dict(position)
        now = max(datetime.fromisoformat(str(p["ts"])) for p in self.stores.values())
        desk = TransferDesk(TransferPlanner(network, need_hours))
        desk.open = self.open
        alerts = desk.evaluate(positions_at(self.stores.values(), now), now)
        self.open = desk.open
        return alerts
