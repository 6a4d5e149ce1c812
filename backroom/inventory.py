"""Shelf and backroom quantities per store×SKU, from scans, sales and camera fill.

Pure domain logic, no Kafka: the Faust inventory agent loads a `SkuState` from its table,
calls `InventoryBook.apply(...)` for each event and writes the state back. Unit tests:
`pytest tests/unit/test_inventory.py`.

Rules (DESIGN.md section 3/4):
- sale: shelf −qty; scan `receive`: +qty at `location` (backroom by default), against on-order;
- scan `move_to_shelf`: backroom → shelf, qty; scan `adjust`: ±qty at `location`;
- scan `count`: absolute count at `location` as of its `ts`; deltas stamped at or before the
  latest count of a location are already in that count and are not applied again, and deltas
  stamped after it that arrived first stay applied (the last RECENT_MAX of them within
  COUNT_GRACE of event time are remembered);
- every event is applied at most once: its `event_id` is remembered in a bounded window.

The quantities are signed ledgers, so sales and scans (two topics, no order between them)
give the same result in any arrival order: addition commutes, a clamp would not. What is
published is never negative (`max(0, ledger)`); a negative ledger is record inaccuracy, which
the next count corrects.
"""

from __future__ import annotations

import binascii
import hashlib
import math
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from backroom.demand.reorder import ReorderPolicy, reorder_levels
from backroom.demand.tracker import DemandConfig, DemandTracker
from backroom.records import CatalogSku, InventoryState, Sale, Scan, shelf_estimate, validated


@dataclass(frozen=True)
class SkuParams:
    """Catalog values the math needs; `missing` when the SKU had no catalog entry."""

    shelf_capacity: int
    min_shelf_qty: int
    lead_time_hours: float
    case_pack: int
    category: str = "uncategorised"
    name: str = ""
    missing: bool = False
    unit_cost: float | None = None

    @classmethod
    def from_catalog(cls, entry: CatalogSku) -> SkuParams:
        return cls(
            shelf_capacity=entry.shelf_capacity,
            min_shelf_qty=entry.min_shelf_qty,
            lead_time_hours=entry.lead_time_hours,
            case_pack=entry.case_pack,
            category=entry.category,
            name=entry.name,
            unit_cost=entry.unit_cost,
        )


class SeenIds:
    """The last event_ids applied to one store×SKU, as 8-byte BLAKE2b digests in one bytes object.

    Every table write carries this window: 64 UUID strings were ~2.5 KB of JSON per write (most
    of the value) and ~5 KB of Python objects per key in memory; digests are 512 bytes (684 in
    base64). Two different ids collide with probability ~2^-64 per pair, far below a source
    resending a different event under an old id."""

    __slots__ = ("buf",)
    WIDTH = 8

    def __init__(self, buf: bytes = b"") -> None:
        self.buf = buf

    @staticmethod
    def digest(event_id: str) -> bytes:
        return hashlib.blake2b(event_id.encode(), digest_size=SeenIds.WIDTH).digest()

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self._holds(self.digest(event_id))

    def _holds(self, d: bytes) -> bool:
        i = self.buf.find(d)
        while i != -1:  # a match must start on a digest boundary
            if i % self.WIDTH == 0:
                return True
            i = self.buf.find(d, i + 1)
        return False

    def __len__(self) -> int:
        return len(self.buf) // self.WIDTH

    def add(self, event_id: str, limit: int) -> None:
        self.buf = (self.buf + self.digest(event_id))[-limit * self.WIDTH :]

    def add_new(self, event_id: str, limit: int) -> bool:
        """`add` unless already in the window (then False): `in` + `add`, hashing the id once."""
        d = self.digest(event_id)
        if self._holds(d):
            return False
        self.buf = (self.buf + d)[-limit * self.WIDTH :]
        return True

    # binascii is what base64.b64encode/b64decode call (same output, the same non-strict
    # decoding), without their Python wrappers: once per key and batch each way.
    def encode(self) -> str:
        return binascii.b2a_base64(self.buf, newline=False).decode("ascii")

    @classmethod
    def decode(cls, data: str) -> SeenIds:
        return cls(binascii.a2b_base64(data))


@dataclass
class SkuState:
    store_id: str
    sku: str
    shelf_qty: int = 0
    backroom_qty: int = 0
    on_order: int = 0
    # Event time in µs since the epoch (`micros`): the newest event applied (the state's clock,
    # `ts`) and each location's latest count. Integers, because every event compares against
    # them: formatting an ISO stamp per event to compare strings was ~8 % of the inventory
    # logic. The table value and `ts` carry them as ISO stamps in UTC, as before.
    clock_us: int | None = None
    version: int = 0
    last_event_id: str | None = None
    vision_fill: float | None = None
    shelf_count_us: int | None = None
    backroom_count_us: int | None = None
    # Highest offset applied per "topic:partition": a redelivery after a crash is skipped in
    # O(1) whatever the dedup window; `seen` catches the same event_id sent again by a source.
    offsets: dict[str, int] = field(default_factory=dict)
    # The deltas of the last COUNT_GRACE of event time, packed (see `Deltas`), in stamp order.
    deltas: bytes = b""
    seen: SeenIds = field(default_factory=SeenIds)
    demand: DemandTracker = field(default_factory=DemandTracker)
    # The most units the camera's last confident view allows on the shelf now: its visible
    # facings × the facing depth, then every shelf delta since (a sale takes from it, a move
    # adds). Set only while it is below the records (records drift above the shelf: theft, a
    # miscount); a count or a view that allows the records clears it. A sale stamped before the
    # view but applied after it is taken from it again: a late event can put it under the shelf.
    shelf_seen_max: int | None = None
    # The ISO stamps read from the table, by their µs: a count's stamp is written back with
    # every value until the next count, and formatting one costs ~1.5 µs.
    stamps: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    def stamp(self, us: int | None) -> str | None:
        if us is None:
            return None
        return self.stamps.get(us) or iso_stamp(us)

    @property
    def ts(self) -> str | None:
        """The state's event time as an ISO stamp in UTC (None before its first event)."""
        return self.stamp(self.clock_us)

    @property
    def recent(self) -> list[list[Any]]:
        """The remembered deltas as `[stamp, "shelf"|"backroom", qty]`, oldest first."""
        return Deltas.unpack(self.deltas)

    # --- as a dict (the published view and tests; the table value is backroom.state_codec) ---
    def to_dict(self) -> dict[str, Any]:
        out = {
            "store_id": self.store_id,
            "sku": self.sku,
            "shelf_qty": self.shelf_qty,
            "backroom_qty": self.backroom_qty,
            "on_order": self.on_order,
            "ts": self.ts,
            "version": self.version,
            "last_event_id": self.last_event_id,
            "vision_fill": self.vision_fill,
            "shelf_count_ts": self.stamp(self.shelf_count_us),
            "backroom_count_ts": self.stamp(self.backroom_count_us),
            "offsets": self.offsets,
            "recent": binascii.b2a_base64(self.deltas, newline=False).decode("ascii"),
            "seen": self.seen.encode(),
            "demand": self.demand.to_dict(),
        }
        if self.shelf_seen_max is not None:  # rare (a camera bound in force): no null per value
            out["shelf_seen_max"] = self.shelf_seen_max
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkuState:
        stamps: dict[int, str] = {}

        def read(stamp: str | None) -> int | None:
            us = stamp_micros(stamp)
            if us is not None and stamp is not None:
                stamps[us] = stamp
            return us

        return cls(
            store_id=data["store_id"],
            sku=data["sku"],
            shelf_qty=data["shelf_qty"],
            backroom_qty=data["backroom_qty"],
            on_order=data["on_order"],
            clock_us=read(data["ts"]),
            version=data["version"],
            last_event_id=data.get("last_event_id"),
            vision_fill=data.get("vision_fill"),
            shelf_count_us=read(data.get("shelf_count_ts")),
            backroom_count_us=read(data.get("backroom_count_ts")),
            stamps=stamps,
            offsets=dict(data["offsets"]),
            deltas=Deltas.decode(data["recent"]),
            seen=SeenIds.decode(data["seen"]),
            demand=DemandTracker.from_data(data["demand"]),
            shelf_seen_max=data.get("shelf_seen_max"),
        )

    @property
    def shelf_estimate(self) -> int:
        """The shelf as best known (`records.shelf_estimate`)."""
        return shelf_estimate(self.shelf_qty, self.shelf_seen_max)


class InventoryBook:
    """Applies events to `SkuState`s idempotently. One book per worker; state lives in tables."""

    def __init__(self, dedup_window: int = 512, demand: DemandConfig | None = None) -> None:
        self.dedup_window = dedup_window
        self.demand = demand or DemandConfig()

    def _remember(self, state: SkuState, event_id: str) -> bool:
        """False when the event was already applied (a redelivery)."""
        return state.seen.add_new(event_id, self.dedup_window)

    def apply(self, state: SkuState, event: Sale | Scan) -> bool:
        """Apply one event; returns False (and changes nothing) for a repeated event_id."""
        if not self._remember(state, event.event_id):
            return False
        us = micros(event.ts)
        t = event.ts.timestamp()
        demand = state.demand
        if isinstance(event, Sale):
            demand.add_sale_at(t, event.qty)
            _delta(state, "shelf", -event.qty, us)
        else:
            self._apply_scan(state, event, us)
        # Demand: note whether the shelf is empty from now on (censoring), then let the
        # event clock close the hours it has passed; the model learns only then.
        demand.shelf_seen_at(t, empty=_shelf_empty(state))
        demand.advance_at(t, self.demand)
        state.version += 1
        state.last_event_id = event.event_id
        # Late events still count, but the state's clock never runs backwards.
        if state.clock_us is None or us > state.clock_us:
            state.clock_us = us
        return True

    @staticmethod
    def _apply_scan(state: SkuState, scan: Scan, us: int) -> None:
        loc = "shelf" if scan.location == "shelf" else "backroom"
        if scan.kind == "count":
            _count(state, loc, scan.qty, us)
            return
        if scan.kind == "receive":
            state.on_order = max(0, state.on_order - scan.qty)
        if scan.kind == "move_to_shelf":
            _delta(state, "shelf", scan.qty, us)
            _delta(state, "backroom", -scan.qty, us)
        else:
            _delta(state, loc, scan.qty, us)

    def apply_vision(self, state: SkuState, fill: float, confidence: float, params: SkuParams,
                     facings: int, us: int | None = None, min_confidence: float = 0.6) -> bool:
        """Fuse a camera view of the SKU's slot into the shelf estimate when it is confident.

        The camera sees facings, not units: `facings` slots of capacity / facings units each,
        a facing showing while it holds one, so k visible facings mean more than (k - 1) and
        at most k facings' depth. Records below that minimum are raised to it (the view proves
        them low); records above the maximum stand, but the maximum bounds the shelf estimate
        (`shelf_seen_max`) that the projections and RESTOCK_SHELF use, and a gap seen while
        records say stock is PHANTOM_STOCK's (a recount decides): never silently zeroed.
        Before, the record was raised to k full facings, the maximum: every view inflated it.
        A view stamped `us` is as of then: shelf deltas stamped after it (a move processed
        before the frame) are added to both bounds, as a count does; one stamped at the same
        instant only to the maximum (it may be in the view or not).
        """
        state.vision_fill = round(fill, 3)
        if confidence < min_confidence:
            return False
        depth = params.shelf_capacity / max(1, facings)
        visible = round(fill * facings)
        least = math.floor((visible - 1) * depth) + 1 if visible > 0 else 0
        most = min(params.shelf_capacity, math.floor(visible * depth + 1e-9))
        if us is not None:
            # A delta stamped at the view's own instant may or may not be in the picture: each
            # bound takes the reading that keeps it a bound (the maximum counts it as after).
            after = [(t, d) for t, where, d in Deltas.ENTRY.iter_unpack(state.deltas) if where == 0 and t >= us]
            least = max(0, least + sum(d for t, d in after if t > us))
            most = max(0, most + sum(d for _, d in after))
        state.shelf_seen_max = most if most < state.shelf_qty else None
        if least > state.shelf_qty:
            state.shelf_qty = least
            return True
        return False


# Deltas are remembered this long (event time) so a count that arrives late can keep the
# deltas stamped after it; older deltas are pruned to keep the table value small. A fast SKU
# keeps only its last RECENT_MAX of them: at 3 sales a minute the 30-minute window held ~90
# (a 4.9 KB table value, written to the changelog at every batch, 10x a slow SKU's), so a
# count is reconciled exactly when it is at most 30 minutes or 32 deltas late.
COUNT_GRACE = timedelta(minutes=30)
RECENT_PRUNE_AT = 24
RECENT_MAX = 32
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
LOCATIONS = ("shelf", "backroom")


def micros(ts: datetime) -> int:
    """Event time as integer microseconds since the epoch: orders exactly as the UTC stamps do."""
    return (ts - EPOCH) // _MICRO


def iso_stamp(us: int | None) -> str | None:
    """`micros` back to the ISO stamp in UTC (`ts.astimezone(UTC).isoformat()`)."""
    return None if us is None else (EPOCH + us * _MICRO).isoformat()


def stamp_micros(stamp: str | None) -> int | None:
    return None if stamp is None else micros(datetime.fromisoformat(stamp))


class Deltas:
    """A key's recent deltas packed as fixed-width records (stamp in µs, location, qty), kept
    in stamp order, a late delta after those of its stamp already there.

    Every event of a key reads and rewrites this list, and every table write carries it: as
    JSON lists of `[stamp, location, qty]` it was a third of a steady-state value (~1 KB) and
    half the cost of parsing one (32 lists and 64 strings to allocate per event); packed it is
    one string (~550 characters of base64) that is searched in place."""

    ENTRY = struct.Struct("<qbi")
    W = ENTRY.size

    @classmethod
    def stamp_at(cls, buf: bytes, i: int) -> int:
        return cls.ENTRY.unpack_from(buf, i * cls.W)[0]  # type: ignore[no-any-return]

    @classmethod
    def first_after(cls, buf: bytes, us: int, strict: bool) -> int:
        """Index of the first entry stamped after `us` (`strict`) or at/after it."""
        lo, hi = 0, len(buf) // cls.W
        while lo < hi:
            mid = (lo + hi) // 2
            t = cls.stamp_at(buf, mid)
            if t < us or (strict and t == us):
                lo = mid + 1
            else:
                hi = mid
        return lo

    @classmethod
    def unpack(cls, buf: bytes) -> list[list[Any]]:
        return [[(EPOCH + t * _MICRO).isoformat(), LOCATIONS[loc], qty]
                for t, loc, qty in cls.ENTRY.iter_unpack(buf)]

    @classmethod
    def decode(cls, data: str) -> bytes:
        return binascii.a2b_base64(data)


def _delta(state: SkuState, loc: str, qty: int, us: int) -> None:
    count_us = state.shelf_count_us if loc == "shelf" else state.backroom_count_us
    if count_us is not None and us <= count_us:
        return  # already part of that location's latest count
    if loc == "shelf":
        state.shelf_qty += qty
        if state.shelf_seen_max is not None:
            state.shelf_seen_max = max(0, state.shelf_seen_max + qty)
            if state.shelf_seen_max >= state.shelf_qty:
                state.shelf_seen_max = None  # the records are within the view again
    else:
        state.backroom_qty += qty
    buf, w = state.deltas, Deltas.W
    entry = Deltas.ENTRY.pack(us, loc == "backroom", qty)
    if not buf or us >= Deltas.stamp_at(buf, len(buf) // w - 1):
        buf += entry
    else:  # a late delta
        i = Deltas.first_after(buf, us, strict=True) * w
        buf = buf[:i] + entry + buf[i:]
    n = len(buf) // w
    if n > RECENT_PRUNE_AT:  # pruning per event would cost more than it saves
        newest = us  # the newest stamp the key has seen, as the state's clock
        if state.clock_us is not None and state.clock_us > us:
            newest = state.clock_us
        horizon = newest - COUNT_GRACE // _MICRO
        if Deltas.stamp_at(buf, 0) < horizon:
            buf = buf[Deltas.first_after(buf, horizon, strict=False) * w :]
        buf = buf[-RECENT_MAX * w :]
    state.deltas = buf


def _count(state: SkuState, loc: str, qty: int, us: int) -> None:
    """An absolute count as of `us`: deltas stamped after it (already applied) stay applied."""
    count_us = state.shelf_count_us if loc == "shelf" else state.backroom_count_us
    if count_us is not None and us <= count_us:
        return  # an older count arriving late says nothing new
    code = LOCATIONS.index(loc)
    later = sum(d for t, where, d in Deltas.ENTRY.iter_unpack(state.deltas) if where == code and t > us)
    if loc == "shelf":
        state.shelf_qty, state.shelf_count_us = qty + later, us
        state.shelf_seen_max = None  # a count is the truth the camera's bound stood in for
    else:
        state.backroom_qty, state.backroom_count_us = qty + later, us


def _shelf_empty(state: SkuState) -> bool:
    # A recorded sale against an empty record still says the shelf is empty from here on; the
    # camera's gap counts too (records drift, shelves don't lie).
    return state.shelf_estimate <= 0 or (state.vision_fill is not None and state.vision_fill <= 0.05)


def to_inventory_state(state: SkuState, params: SkuParams, demand_per_hour: float | None = None,
                       policy: ReorderPolicy | None = None) -> InventoryState:
    """The published state. Projections walk the SKU's hourly forecast from the state's event
    time (a flat `demand_per_hour`, when given, replaces it); reorder levels need `policy`."""
    # Projections walk the shelf as best known (records capped by the camera's view).
    shelf, backroom = state.shelf_estimate, max(0, state.backroom_qty)
    d = state.demand
    when = EPOCH + state.clock_us * _MICRO if state.clock_us is not None else None
    if demand_per_hour is not None or when is None:
        rate = max(d.rate if demand_per_hour is None else demand_per_hour, 0.0)
        shelf_out = round(shelf / rate, 2) if rate > 1e-9 else None
        stockout = round((shelf + backroom) / rate, 2) if rate > 1e-9 else None
    else:
        rate = max(d.coming_hour(when), 0.0)
        h = d.hours_until(when, shelf)
        shelf_out = round(h, 2) if h is not None else None
        h = d.hours_until(when, shelf + backroom)
        stockout = round(h, 2) if h is not None else None
    levels = None
    if policy is not None and when is not None:
        recheck = 0.0
        if policy.recheck:
            nxt = d.hours_until(when, 1.0, max_hours=24.0)
            recheck = 24.0 if nxt is None else nxt
        levels = reorder_levels(d, when, params.lead_time_hours, policy, recheck)
    assert when is not None  # a state is published only once an event has stamped it
    return validated(
        InventoryState,
        {
            "ts": when,
            "store_id": state.store_id,
            "sku": state.sku,
            "shelf_qty": max(0, state.shelf_qty),
            "backroom_qty": backroom,
            "shelf_capacity": params.shelf_capacity,
            "vision_fill": state.vision_fill,
            "demand_per_hour": round(rate, 4),
            "hours_to_shelf_out": shelf_out,
            "hours_to_stockout": stockout,
            "on_order": state.on_order,
            "category": params.category,
            "min_shelf_qty": params.min_shelf_qty,
            "catalog_missing": True if params.missing else None,
            "last_event_id": state.last_event_id,
            "version": state.version,
            "lead_time_hours": params.lead_time_hours if levels else None,
            "case_pack": params.case_pack if levels else None,
            "lead_time_demand": levels.lead_time_demand if levels else None,
            "safety_stock": levels.safety_stock if levels else None,
            "reorder_point": levels.reorder_point if levels else None,
            "order_up_to": levels.order_up_to if levels else None,
            "shelf_seen_max": state.shelf_seen_max,
            "unit_cost": params.unit_cost,
        },
    )
