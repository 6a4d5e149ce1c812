"""A deterministic store simulator: the events a real store would send, plus the truth.

    from backroom.simulation import StoreSimulator, SimConfig
    sim = StoreSimulator(SimConfig(stores=2, skus=10, days=3, seed=7))
    for ev in sim.events(): ...          # SimEvent(ts, topic, key, record) in event-time order

`backroom simulate` produces these to Kafka at an accelerated clock; the backtest feeds them to
the processing logic directly. Same seed, same events, same truth.

The model: Poisson sales per store×SKU with per-SKU rates and hour-of-day / weekday profiles,
only while the store is open and only while the shelf truly has stock (a sale from an empty
shelf is a lost sale, not an event); deliveries into the backroom after a lead time (order-up-to,
checked daily); staff moving stock to the shelf in scheduled rounds; unrecorded shrink (theft)
and miscounted cycle counts, so records drift from the truth as they do in real stores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from backroom.records import CatalogSku, Record, Sale, Scan, sku_key

CATEGORIES = {
    "Dairy": ("Milk", "Yogurt", "Butter", "Cheese", "Cream"),
    "Bakery": ("Bread", "Bagels", "Croissants", "Muffins", "Rolls"),
    "Beverages": ("Cola", "Sparkling Water", "Orange Juice", "Iced Tea", "Energy Drink"),
    "Snacks": ("Potato Chips", "Pretzels", "Granola Bars", "Popcorn", "Nuts"),
    "Household": ("Dish Soap", "Paper Towels", "Detergent", "Sponges", "Trash Bags"),
    "Frozen": ("Pizza", "Ice Cream", "Peas", "Fries", "Dumplings"),
    "Personal care": ("Shampoo", "Toothpaste", "Soap", "Deodorant", "Razors"),
    "Produce": ("Bananas", "Apples", "Tomatoes", "Avocados", "Lettuce"),
}
# Relative demand by hour of day (store open 07:00–22:00) and by weekday (Mon=0).
HOUR_PROFILE = [0, 0, 0, 0, 0, 0, 0, 0.5, 0.8, 0.9, 1.0, 1.2, 1.5, 1.3, 1.0, 0.9, 1.1, 1.4, 1.6, 1.4, 1.0, 0.7, 0.4, 0]
WEEKDAY_PROFILE = [0.9, 0.85, 0.9, 0.95, 1.1, 1.35, 1.15]
RESTOCK_HOURS = (8, 13, 18)
STORE_FACTOR = (0.7, 1.4)  # a store's demand relative to the chain's, drawn uniformly
PLANOGRAM_DAYS = 1.0  # a shelf holds at least this many days of average sales (busy store)
ORDER_HOUR = 6


@dataclass(frozen=True)
class SimConfig:
    stores: int = 3
    skus: int = 20
    days: float = 7.0
    seed: int = 7
    start: datetime = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    shrink_per_hour: float = 0.01  # chance per open hour that one unit vanishes unrecorded
    miscount_rate: float = 0.3  # share of cycle counts that are off by one or two
    restock_hours: tuple[int, ...] = RESTOCK_HOURS


@dataclass
class SimSku:
    store_id: str
    catalog: CatalogSku
    rate: float  # mean units/hour at profile 1.0
    shelf: int = 0
    backroom: int = 0
    pipeline: list[tuple[datetime, int]] = field(default_factory=list)  # (arrival, qty)
    outbox: list[int] = field(default_factory=list)  # units sent to other stores, scans pending

    @property
    def key(self) -> str:
        return sku_key(self.store_id, self.catalog.sku)

    def expected_rate(self, ts: datetime) -> float:
        return self.rate * HOUR_PROFILE[ts.hour] * WEEKDAY_PROFILE[ts.weekday()]


@dataclass(frozen=True)
class SimEvent:
    ts: datetime
    topic: str
    key: str
    record: Record


@dataclass(frozen=True)
class TruthRow:
    ts: datetime
    store_id: str
    sku: str
    shelf: int
    backroom: int
    demand: float  # expected units/hour at this moment (the true rate)
    lost: int = 0  # sales lost to an empty shelf since the previous row

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts.isoformat(), "store_id": self.store_id, "sku": self.sku,
            "shelf": self.shelf, "backroom": self.backroom, "demand": round(self.demand, 4),
            "lost": self.lost,
        }


# A staff policy decides, at an event time, how many units to move to the shelf for one SKU.
StaffPolicy = Callable[[SimSku, datetime], int]


def scheduled_staff(hours: tuple[int, ...] = RESTOCK_HOURS) -> StaffPolicy:
    """Fixed rounds: at each round hour, fill every shelf from the backroom."""

    def policy(item: SimSku, ts: datetime) -> int:
        if ts.hour not in hours or ts.minute != 0:
            return 0
        return min(item.backroom, item.catalog.shelf_capacity - item.shelf)

    return policy


class StoreSimulator:
    def __init__(self, config: SimConfig, staff: StaffPolicy | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.staff = staff or scheduled_staff(config.restock_hours)
        self.items = self._make_items()
        self.truth: list[TruthRow] = []
        self.lost_sales = 0
        self._seq = 0
        # The store's own daily order-up-to check; the closed loop turns it off and orders on
        # REORDER alerts through `place_order` instead.
        self.auto_orders = True
        self.by_key = {item.key: item for item in self.items}

    def place_order(self, key: str, qty: int, ts: datetime) -> datetime:
        """An order placed at `ts` (e.g. on a REORDER alert); it arrives after the lead time."""
        item = self.by_key[key]
        arrival = ts + timedelta(hours=item.catalog.lead_time_hours)
        item.pipeline.append((arrival, qty))
        return arrival

    def transfer(self, from_key: str, to_key: str, qty: int, ts: datetime, hours: float) -> int:
        """Another store's stock sent over (a TRANSFER): it leaves the giver's backroom now (its
        `adjust` scan is published at the next hour) and arrives after `hours` as a delivery."""
        giver, receiver = self.by_key[from_key], self.by_key[to_key]
        qty = min(qty, giver.backroom)
        if qty <= 0:
            return 0
        giver.backroom -= qty
        giver.outbox.append(qty)
        self._record_truth(ts, giver)
        receiver.pipeline.append((ts + timedelta(hours=hours), qty))
        return qty

    # --- set-up ----------------------------------------------------------------------------------
    def _make_items(self) -> list[SimSku]:
        rng = self.rng
        skus: list[tuple[CatalogSku, float]] = []
        names = [(cat, item) for cat, items in CATEGORIES.items() for item in items]
        hi = STORE_FACTOR[1]
        day = sum(HOUR_PROFILE) * sum(WEEKDAY_PROFILE) / len(WEEKDAY_PROFILE)  # profile-hours a day
        for i in range(self.config.skus):
            cat, item = names[i % len(names)]
            fixture = rng.choice([12, 16, 24, 24, 32, 48])  # the space a fixture gives any SKU
            lead = float(rng.choice([24, 36, 48, 72]))
            pack = rng.choice([6, 12, 12, 24])
            cost = round(rng.uniform(0.5, 12.0), 2)
            # Log-normal: a few fast movers, a long tail of slow ones.
            rate = min(6.0, math.exp(rng.gauss(-0.3, 0.8)))
            # Planogram: facings follow sales velocity. The shelf holds at least a day of average
            # sales at a busy store (the top store factor) and a whole case pack, in steps of
            # 4 units, and never less than the fixture's space. (Before, the capacity was drawn
            # independently of the rate: a fast mover's full shelf lasted < 1 h at its peaks.)
            capacity = max(fixture, pack, 4 * math.ceil(rate * hi * day * PLANOGRAM_DAYS / 4))
            entry = CatalogSku(
                sku=f"SKU-{i + 1:04d}",
                name=f"{item} {1 + i // len(names)}" if i >= len(names) else item,
                category=cat,
                shelf_capacity=capacity,
                min_shelf_qty=max(2, capacity // 4),
                lead_time_hours=lead,
                case_pack=pack,
                unit_cost=cost,
                aisle=f"A{1 + list(CATEGORIES).index(cat)}",
            )
            skus.append((entry, rate))
        items = []
        for s in range(self.config.stores):
            store_factor = rng.uniform(*STORE_FACTOR)
            for entry, rate in skus:
                items.append(SimSku(f"S{s + 1:02d}", entry, rate * store_factor))
        return items

    def _event_id(self) -> str:
        self._seq += 1
        return f"sim{self.config.seed}-{self._seq:08d}"

    def catalog_events(self) -> list[SimEvent]:
        seen: dict[str, CatalogSku] = {}
        for item in self.items:
            seen.setdefault(item.catalog.sku, item.catalog)
        return [
            SimEvent(self.config.start, "catalog.skus", sku_key("*", sku), entry)
            for sku, entry in seen.items()
        ]

    # --- the clock -------------------------------------------------------------------------------
    def events(self) -> Iterator[SimEvent]:
        """Every event in event-time order: catalog first, then opening stock, then the days."""
        cfg = self.config
        yield from self.catalog_events()
        t0 = cfg.start
        yield from self._opening_stock(t0)
        hours = int(cfg.days * 24)
        for h in range(hours):
            hour_start = t0 + timedelta(hours=h)
            yield from self._hour(hour_start)

    def _opening_stock(self, ts: datetime) -> Iterator[SimEvent]:
        rng = self.rng
        for item in self.items:
            cap = item.catalog.shelf_capacity
            # Some shelves open half-empty and some backrooms thin, so the first hours matter.
            item.shelf = rng.randint(cap // 3, cap)
            item.backroom = rng.choice([0, 1, 2]) * item.catalog.case_pack + rng.randint(0, cap)
            yield self._scan(ts, item, "count", item.backroom, "backroom")
            yield self._scan(ts, item, "count", item.shelf, "shelf")
            self._record_truth(ts, item)

    def _hour(self, hour_start: datetime) -> Iterator[SimEvent]:
        rng = self.rng
        pending: list[tuple[datetime, int, SimSku, str]] = []
        for idx, item in enumerate(self.items):
            lam = item.expected_rate(hour_start)
            for _ in range(_poisson(rng, lam)):
                pending.append((hour_start + timedelta(seconds=rng.uniform(0, 3600)), idx, item, "sale"))
            for minute in (0, 30):
                pending.append((hour_start + timedelta(minutes=minute), idx, item, "staff"))
            if hour_start.hour == ORDER_HOUR:
                pending.append((hour_start, idx, item, "order"))
            if hour_start.hour == 23 and rng.random() < 0.1:
                pending.append((hour_start + timedelta(minutes=30), idx, item, "cycle_count"))
            if lam > 0 and rng.random() < self.config.shrink_per_hour:
                pending.append((hour_start + timedelta(seconds=rng.uniform(0, 3600)), idx, item, "shrink"))
            if lam > 0 and rng.random() < self.config.shrink_per_hour / 3:
                pending.append((hour_start + timedelta(seconds=rng.uniform(0, 3600)), idx, item, "damage"))
            for qty in item.outbox:  # stock sent to another store (a transfer)
                pending.append((hour_start, idx, item, f"give:{qty}"))
            item.outbox.clear()
            for arrival, qty in list(item.pipeline):
                if arrival < hour_start + timedelta(hours=1):
                    item.pipeline.remove((arrival, qty))
                    pending.append((max(arrival, hour_start), idx, item, f"deliver:{qty}"))
        pending.sort(key=lambda p: (p[0], p[1], p[3]))
        for ts, _, item, what in pending:
            yield from self._act(ts, item, what)

    def _act(self, ts: datetime, item: SimSku, what: str) -> Iterator[SimEvent]:
        rng = self.rng
        if what == "sale":
            if item.shelf <= 0:
                self.lost_sales += 1
                self._record_truth(ts, item, lost=1)
                return
            qty = 1 if rng.random() < 0.85 else min(item.shelf, rng.randint(2, 3))
            item.shelf -= qty
            self._record_truth(ts, item)
            yield SimEvent(ts, "pos.sales", item.key, Sale(
                event_id=self._event_id(), ts=ts, store_id=item.store_id, sku=item.catalog.sku,
                qty=qty, unit_price=round((item.catalog.unit_cost or 1.0) * 1.4, 2),
                register_id=f"R{rng.randint(1, 4)}",
            ))
        elif what == "staff":
            move = self.staff(item, ts)
            if move > 0:
                item.backroom -= move
                item.shelf += move
                self._record_truth(ts, item)
                yield self._scan(ts, item, "move_to_shelf", move)
            recount = getattr(self.staff, "recount", None)  # staff that count what they check
            if recount is not None and recount(item.key):
                yield self._scan(ts, item, "count", item.shelf, "shelf")
        elif what == "order":
            if not self.auto_orders:
                return
            cat = item.catalog
            daily = item.rate * sum(HOUR_PROFILE) * 1.2
            target = cat.shelf_capacity + daily * (cat.lead_time_hours / 24 + 1.5)
            position = item.shelf + item.backroom + sum(q for _, q in item.pipeline)
            if position < target:
                qty = math.ceil((target - position) / cat.case_pack) * cat.case_pack
                item.pipeline.append((ts + timedelta(hours=cat.lead_time_hours), qty))
        elif what.startswith("deliver:"):
            qty = int(what.split(":")[1])
            item.backroom += qty
            self._record_truth(ts, item)
            yield self._scan(ts, item, "receive", qty)
        elif what == "shrink":
            if item.shelf > 0:
                item.shelf -= 1  # theft: the truth changes, the records do not
                self._record_truth(ts, item)
        elif what == "damage":
            if item.backroom > 0:
                item.backroom -= 1
                self._record_truth(ts, item)
                yield self._scan(ts, item, "adjust", -1, "backroom")
        elif what.startswith("give:"):
            yield self._scan(ts, item, "adjust", -int(what.split(":")[1]), "backroom")
        elif what == "cycle_count":
            error = rng.choice([-2, -1, 1, 2]) if rng.random() < self.config.miscount_rate else 0
            yield self._scan(ts, item, "count", max(0, item.shelf + error), "shelf")

    def _scan(self, ts: datetime, item: SimSku, kind: str, qty: int, location: str = "backroom") -> SimEvent:
        scan = Scan.model_validate({
            "event_id": self._event_id(), "ts": ts, "store_id": item.store_id,
            "sku": item.catalog.sku, "kind": kind, "qty": qty, "location": location,
        })
        return SimEvent(ts, "backroom.scans", item.key, scan)

    def _record_truth(self, ts: datetime, item: SimSku, lost: int = 0) -> None:
        self.truth.append(
            TruthRow(ts, item.store_id, item.catalog.sku, item.shelf, item.backroom,
                     item.expected_rate(ts), lost)
        )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    # Knuth's method is plenty for the small hourly rates a single SKU sees.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
