"""Silent shelves: a SKU that normally sells has gone improbably quiet while the records say its
shelf has stock -> a `CHECK_SHELF` alert (the shelf may be empty, hidden or blocked).

    watch = SilentShelf(threshold=1e-4)
    watch.observe("S1", "MILK", shelf=6, last_sale=t_sale, looked=None, rate_at=tracker.rate_at,
                  ready=True, now=t, sales=[(t_sale, 1)])
    alerts = watch.advance(now)                  # event time: opens CHECK_SHELF when due
    watch.false_alarm("S1:MILK")                 # a recount found stock: widen this key's bound

Tests: `pytest tests/unit/test_silent_shelf.py`. Used by `InventoryProcessor` when
`BACKROOM_SILENT_SHELF` is on; docs/floor.md.

A silence is measured in the units the forecast expected during it, E = the sum of r(t) over the
silent hours (r: the demand model's hourly forecast, hour profile and weekday factors included,
capped by the key's own sales in that hour of day), so a fast seller silent for an hour weighs
as much as a slow seller silent for a day, and a closed night (r = 0) costs nothing. Poisson
would say P(no sale) = exp(-E); the watch does not trust that scale. It learns it per store×SKU
from the silences that ended with a sale (proof the shelf was stocked throughout: an empty shelf
is only refilled by a move, which ends the silence first): `scale` = their decayed mean E (a
prior of PRIOR_GAPS silences at 1 unit), and `worst` = their decayed maximum. The calibrated
chance of the current silence is then exp(-E / scale), and CHECK_SHELF opens when E exceeds

    bound = max(scale x (ln(1 / threshold) + DRIFT_NATS x (records' shelf - 1)), WORST_MARGIN x worst)

while the records say the shelf holds stock. The records term is the prior: the shelf is empty
under records of q units only if q units vanished unrecorded (theft takes them one at a time),
so each recorded unit beyond the first asks DRIFT_NATS more evidence. Without it the few
improbable-but-real gaps of well-stocked shelves (records 17, 23) made most of the alerts; every
true silent shelf in the backtests had records of 1 to 5 (docs/floor.md). `worst` keeps a key
whose silences are heavier-tailed than its mean says from alerting on the kind of gap it has
already shown. False-alarm feedback widens one key's bound (`false_alarm`: that silence joins its
worst) and asks a little more evidence of the whole store (STORE_STEP per report, reversible). The silence starts at the later of the last sale and the
last time someone saw the shelf (a shelf count, a move to the shelf, a camera view). A sale, a
shelf count, a move to the shelf or a camera view resolves it (the shelf has been looked at),
and so does the records' shelf reaching zero (OUT_OF_STOCK and RESTOCK_SHELF take over).

The moment P crosses the threshold is computed when a key is observed (a walk over at most
`max_hours` of the forecast), and kept in a heap: `advance` costs O(due keys), not O(keys).
Everything is event time (epoch seconds); the watch is in memory and is rebuilt from the next
event of each key after a restart (a key silent since before the restart is watched from its
first event after it).
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backroom.alerts import alert_id
from backroom.records import Alert, validated

CHECK_SHELF = "CHECK_SHELF"
log = logging.getLogger("backroom.feedback")
PROFILE_DECAY = 0.85  # a day's weight in the key's own hour-of-day profile, per day of age
PROFILE_DAYS = 2.0  # whole (decayed) days of sales history before the profile is trusted
# The calibration (module docstring): measured on the backtest's silences, docs/floor.md.
PRIOR_GAPS = 20.0  # the learnt scale starts as this many silences of 1 expected unit
GAP_DECAY = 0.99  # weight of older silences in the scale, per silence
WORST_DECAY = 0.995  # ... in the worst silence seen, per silence (an extreme: remembered longer)
WORST_MARGIN = 1.5  # the bound is at least this x the worst ordinary silence seen
DRIFT_NATS = 0.5  # evidence asked per recorded unit on the shelf beyond the first
STORE_STEP = 0.5  # a store's threshold factor per false alarm its staff reported (feedback)
MAX_STORE_STEPS = 6


def expected_units(rate_at: Callable[[int], float], t0: float, t1: float) -> float:
    """Forecast units between epoch seconds t0 and t1 (`rate_at(epoch hour)`: units in it)."""
    total, t = 0.0, t0
    while t < t1:
        hour = int(t // 3600)
        stop = min(t1, (hour + 1) * 3600.0)
        total += max(0.0, rate_at(hour)) * (stop - t) / 3600.0
        t = stop
    return total


def p_no_sale(rate_at: Callable[[int], float], t0: float, t1: float) -> float:
    """Poisson chance of no sale between t0 and t1 at the forecast rate."""
    return math.exp(-expected_units(rate_at, t0, t1))


def crossing_time(rate_at: Callable[[int], float], t0: float, units: float, max_hours: float) -> float | None:
    """When the forecast units from t0 on reach `units` (None: not within max_hours)."""
    total, t, end = 0.0, t0, t0 + max_hours * 3600.0
    while t < end:
        hour = int(t // 3600)
        stop = min(end, (hour + 1) * 3600.0)
        rate = max(0.0, rate_at(hour))
        part = rate * (stop - t) / 3600.0
        if total + part >= units and rate > 0:
            return t + (units - total) / rate * 3600.0
        total += part
        t = stop
    return None


@dataclass
class Watch:
    """One store×SKU: the silence and the forecast it is judged by."""

    store_id: str
    sku: str
    since: float  # the silence starts here (last sale, or last look at the shelf)
    shelf: int  # records' shelf (capped by the camera's bound)
    rates: dict[int, float] = field(default_factory=dict)  # epoch hour -> forecast units
    due: float | None = None  # when P(no sale) falls below the threshold
    open_id: str | None = None
    opened: float | None = None
    demand_per_hour: float = 0.0
    # The key's own sales by hour of day, decayed by PROFILE_DECAY a day, over `days` (the
    # decayed count of days seen): what it really sells at 3 a.m. (see `SilentShelf`).
    by_hour: list[float] = field(default_factory=lambda: [0.0] * 24)
    days: float = 0.0
    day: int | None = None
    # The learnt calibration: decayed count and sum of E over ordinary silences (ended by a sale
    # with stock in the records), and the decayed worst of them.
    gaps: float = PRIOR_GAPS
    gaps_e: float = PRIOR_GAPS
    worst: float = 0.0
    last_e: float = 0.0  # E of the last silence that ended with an alert open (for feedback)

    @property
    def scale(self) -> float:
        return self.gaps_e / self.gaps

    def learn(self, e: float) -> None:
        """An ordinary silence of E expected units ended (a sale with stock in the records)."""
        self.gaps = self.gaps * GAP_DECAY + 1.0
        self.gaps_e = self.gaps_e * GAP_DECAY + e
        self.worst = max(self.worst * WORST_DECAY, e)

    def rate_at(self, hour: int) -> float:
        return self.rates.get(hour, 0.0)

    def add_sales(self, sales: list[tuple[float, int]]) -> None:
        for t, qty in sales:
            day = int(t // 86400)
            if self.day is None:
                self.day = day
            elif day > self.day:
                f = PROFILE_DECAY ** (day - self.day)
                self.by_hour = [v * f for v in self.by_hour]
                self.days = self.days * f + sum(PROFILE_DECAY**i for i in range(day - self.day))
                self.day = day
            self.by_hour[int(t // 3600) % 24] += qty

    def profile_rate(self, hour: int) -> float | None:
        """Mean units sold in this hour of day over the days seen; None until PROFILE_DAYS."""
        if self.days < PROFILE_DAYS:
            return None
        return self.by_hour[hour % 24] / self.days


class SilentShelf:
    """Per store×SKU silence watch; `observe` on every state, `advance` as event time moves."""

    def __init__(self, threshold: float = 1e-4, max_hours: float = 48.0) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self.threshold = threshold
        self.max_hours = max_hours
        self.watches: dict[str, Watch] = {}
        self._heap: list[tuple[float, str]] = []
        # Per-key thresholds (false-alarm feedback may raise a key's bar); default otherwise.
        self.thresholds: dict[str, float] = {}
        # False alarms reported per store (bounded 0..MAX_STORE_STEPS; `undo` takes one back).
        self.store_steps: dict[str, int] = {}

    def threshold_for(self, key: str) -> float:
        """The key's threshold (its own, after feedback, else the default), x STORE_STEP for each
        false alarm its store reported (`false_alarm`)."""
        store = key.partition(":")[0]
        return self.thresholds.get(key, self.threshold) * STORE_STEP ** self.store_steps.get(store, 0)

    def observe(self, store_id: str, sku: str, *, shelf: int, last_sale: float | None, looked: float | None,
                rate_at: Callable[[int], float], ready: bool, now: float,
                sales: list[tuple[float, int]] | None = None) -> list[Alert]:
        """A key's newest state. `last_sale` / `looked`: event times of its last sale and of the
        last look at its shelf (count, move, camera), None if unknown; `now`: its clock.
        Returns CHECK_SHELF resolutions (a sale or a look after the alert opened, or the records'
        shelf at zero)."""
        key = f"{store_id}:{sku}"
        w = self.watches.get(key)
        starts = [t for t in (last_sale, looked) if t is not None]
        if w is None:
            # A key first seen (or first since a restart): silent since its last known sale or
            # look, else since its own clock.
            w = self.watches[key] = Watch(store_id, sku, max(starts) if starts else now, shelf)
        since = max(starts) if starts else w.since
        out: list[Alert] = []
        fresh = since > w.since
        if w.rates and w.shelf > 0:
            self._learn(w, sales or [], looked)
        if w.open_id is not None and fresh and w.rates:
            w.last_e = expected_units(w.rate_at, w.since, since)
        if sales:
            w.add_sales(sales)
        w.since = max(w.since, since)
        w.shelf = shelf
        if w.open_id is not None and (fresh or shelf <= 0):
            why = "a sale" if last_sale is not None and last_sale >= w.since else "a look at the shelf"
            if shelf <= 0:
                why = "the records' shelf reaching zero"
            out.append(self._alert(w, "resolved", max(now, w.since), f"Resolved by {why}", "none", {}))
            w.open_id = w.opened = None
        # The forecast over the silence and the 48 h after it. Hours before this state's hour
        # keep the forecast made before them: the model's cache starts at its last closed hour,
        # and asking it about an hour behind that answers with the current hour's rate (a
        # daytime rate for a silent night).
        if ready and (sales is None or w.days >= PROFILE_DAYS):
            h0, h_now = int(w.since // 3600), int(now // 3600)
            old = w.rates
            w.rates = {h: old[h] if h < h_now and h in old else self._rate(w, rate_at, h)
                       for h in range(h0, max(h0, h_now) + int(self.max_hours) + 2)}
            w.demand_per_hour = w.rates.get(h_now, 0.0)
        else:
            w.rates = {}
        self._schedule(key, w)
        return out

    def _schedule(self, key: str, w: Watch) -> None:
        """When the current silence passes the key's bound (kept in the heap), if it can."""
        w.due = None
        if w.open_id is None and w.shelf > 0 and w.rates:
            w.due = crossing_time(w.rate_at, w.since, self.bound(key, w), self.max_hours)
            if w.due is not None:
                heapq.heappush(self._heap, (w.due, key))

    def set_threshold(self, key: str, threshold: float) -> None:
        """A key's own threshold (false-alarm feedback); its current silence is judged by it."""
        self.thresholds[key] = threshold
        w = self.watches.get(key)
        if w is not None:
            self._schedule(key, w)

    def bound(self, key: str, w: Watch) -> float:
        """Expected units of silence that open CHECK_SHELF for this key now (module docstring)."""
        nats = -math.log(self.threshold_for(key)) + DRIFT_NATS * max(0, w.shelf - 1)
        return max(w.scale * nats, WORST_MARGIN * w.worst)

    @staticmethod
    def _learn(w: Watch, sales: list[tuple[float, int]], looked: float | None) -> None:
        """The silences this batch ended with a sale (the first from `w.since`, or from a look in
        the batch; then from sale to sale) teach the key's scale and worst silence."""
        start = w.since if looked is None or looked <= w.since else looked
        for t, _ in sorted(sales):
            if t <= start:
                continue
            w.learn(expected_units(w.rate_at, start, t))
            start = t

    def false_alarm(self, key: str, now: float | None = None) -> None:
        """Staff found the shelf stocked on this key's CHECK_SHELF: that silence was an ordinary
        one, so it joins the key's worst silences (the bound becomes at least WORST_MARGIN x it).
        The alert's own silence, or, while it is still open, the silence up to `now`."""
        self._store_step(key, +1)
        w = self.watches.get(key)
        if w is None:
            return
        e = w.last_e
        if w.open_id is not None and w.rates:
            e = max(e, expected_units(w.rate_at, w.since, now if now is not None else (w.opened or w.since)))
        w.worst = max(w.worst, e)
        self._schedule(key, w)

    def undo_false_alarm(self, key: str) -> None:
        """An `undo` of a false-alarm report: the store's step back (the key's worst silence
        stays: the silence it learnt was still one the shelf lived through)."""
        self._store_step(key, -1)

    def _store_step(self, key: str, step: int) -> None:
        """False alarms rarely repeat on one key (seeds 24 and 28 at threshold 0.1: 9 reports on
        9 keys each), so a report also asks more evidence of the whole store: STORE_STEP on its
        threshold per report, at most MAX_STORE_STEPS; its keys are rescheduled at once."""
        store = key.partition(":")[0]
        before = self.store_steps.get(store, 0)
        after = min(MAX_STORE_STEPS, max(0, before + step))
        if after == before:
            return
        self.store_steps[store] = after
        log.info("CHECK_SHELF false-alarm steps of store %s: %d -> %d (threshold x %g)", store, before, after,
                 STORE_STEP**after)
        for k, w in self.watches.items():
            if w.store_id == store:
                self._schedule(k, w)

    @staticmethod
    def _rate(w: Watch, rate_at: Callable[[int], float], hour: int) -> float:
        """The model's forecast, capped by what the key really sold in that hour of day: the
        hourly models smooth the day into the night (seed 22: ~2 units an hour forecast at 3 a.m.
        for a SKU that sells none), and a silent night would read as an empty shelf."""
        rate = rate_at(hour)
        profile = w.profile_rate(hour)
        return rate if profile is None else min(rate, profile)

    def advance(self, now: float) -> list[Alert]:
        """Event time reached `now`: open CHECK_SHELF for every key whose silence passed its
        bound with stock on the shelf in the records."""
        out: list[Alert] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            w = self.watches.get(key)
            if w is None or w.due != due or w.open_id is not None or w.shelf <= 0:
                continue  # superseded by a newer observation
            w.due = None
            expected = expected_units(w.rate_at, w.since, now)
            p = math.exp(-expected / w.scale)  # calibrated: this key's silences run `scale` x Poisson
            hours = (now - w.since) / 3600
            w.opened = now
            w.open_id = alert_id(w.store_id, w.sku, CHECK_SHELF, _iso(now))
            evidence = {
                "p_no_sale": float(f"{p:.3g}"), "p_poisson": float(f"{math.exp(-expected):.3g}"),
                "silent_hours": round(hours, 2), "expected_units": round(expected, 2),
                "bound_units": round(self.bound(key, w), 2), "scale": round(w.scale, 3),
                "worst_silence": round(w.worst, 2), "last_sale_or_look": _iso(w.since),
                "shelf_qty": w.shelf, "threshold": self.threshold_for(key),
                "demand_per_hour": round(w.demand_per_hour, 3),
            }
            message = (f"No sale of {w.sku} in store {w.store_id} for {hours:.1f} h: {expected:.1f} units "
                       f"expected, more than this shelf's silences ever ran (bound {evidence['bound_units']}); "
                       f"records say {w.shelf} on the shelf")
            action = f"check the shelf of {w.sku}: empty, hidden or blocked? fill it and count it"
            out.append(self._alert(w, "open", now, message, action, evidence))
        return out

    def _alert(self, w: Watch, status: str, ts: float, message: str, action: str,
               evidence: dict[str, Any]) -> Alert:
        assert w.open_id is not None
        return validated(Alert, {
            "alert_id": w.open_id, "ts": datetime.fromtimestamp(ts, UTC), "store_id": w.store_id,
            "sku": w.sku, "type": CHECK_SHELF, "status": status, "severity": "medium",
            "message": message, "action": action, "evidence": evidence,
        })


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()
