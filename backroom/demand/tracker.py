"""Per store×SKU demand state: event-time hourly buckets, censoring, the model, its forecast.

    from backroom.demand.tracker import DemandConfig, DemandTracker
    d = DemandTracker()
    d.add_sale(ts, qty); d.shelf_seen(ts, empty=False); d.advance(ts, DemandConfig())
    d.coming_hour(ts)                         # forecast units for the next 60 minutes

Lives in `SkuState.demand` and so in the inventory table (tests: `pytest tests/unit/test_forecast.py
tests/unit/test_inventory.py`). Per-event work is a dict update; the River model is touched only
when an hour closes, once per SKU and hour:

- an hour closes when the SKU's event clock has passed its end by `grace` (sales and scans come
  from two topics with no order between them, so a scan at 13:00 may arrive before the 12:59
  sales; a late event inside the grace still lands in its hour);
- an hour with the shelf empty (records at or below zero, or the camera seeing a gap) for more
  than `censor_minutes` is censored: its sales say how much stock there was, not the demand, so
  the model learns the sales scaled to the time the shelf was stocked (`qty * 3600 / stocked
  seconds`, at most x UNCENSOR_MAX) or its own forecast, whichever is higher;
- hours with no event at all and a stocked shelf are zero-sale hours (a closed store is data);
- on close the model learns, then the next `horizon` hours are forecast and cached with the
  residual dispersion, so projections between closes cost a walk over a short list;
- outlier guard: an hour's sales teach the model at most LEARN_CAP_K x the SKU's typical
  selling hour (`typical`: the EW geometric mean of its selling hours, each entering capped, so
  one huge line moves it little); the sales themselves are untouched (stock, records, alerts);
- point forecasts (`point_at`, `point_over`): the Poisson median of the mean forecast, the
  number that minimises absolute error (WAPE); the mean stays what projections and reorder
  maths use;
- weekday factors (`wd`, 7 floats, mean 1), learned when a day closes from its demand total
  over a weekday-adjusted daily level: the model learns each hour's demand divided by its
  day's factor and the cached forecast is multiplied back (the hourly models cannot learn a
  weekday in weeks); past the cached hours the last day repeats, rescaled to each weekday.

The model is a `Forecaster` kept as bytes inside the table value (`model`,
`backroom.demand.model_codec`: Holt-Winters as its numbers), decoded only when an hour closes.
"""

from __future__ import annotations

import base64
import math
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backroom.demand.forecast import SEASON, Forecaster, poisson_median, weekday_of
from backroom.demand.model_codec import decode_forecaster, encode_forecaster
from backroom.settings import Settings

MAX_GAP_HOURS = 24 * 14  # a longer silence is skipped in whole weeks (keeps the seasons aligned)
UNCENSOR_MAX = 3.0  # a censored hour's sales are scaled up by at most this (stocked >= 20 min)
# Weekday factors (`DemandTracker.wd`), learned once a day from the day's demand total:
WEEKDAY_PRIOR_UNITS = 50.0  # a day's ratio is shrunk toward the factor it had by this many units
WEEKDAY_MIN_RATE = 0.2  # the weight of a new week's ratio once several weeks are learned
LEVEL_DAY_ALPHA = 0.25  # EW weight per day of the weekday-adjusted daily level
WEEKDAY_MAX_CENSORED = 0.25  # a day with more of its demand estimated (shelf empty) is skipped
WEEKDAY_RANGE = (0.25, 4.0)
# Outlier guard (`DemandTracker.typical`): what one hour may teach the model. One wholesale line
# (80,995 units of a product that sells dozens an hour) would otherwise set the level, the
# season, the weekday factors and the dispersion for weeks.
LEARN_CAP_K = 10.0  # an hour teaches at most this many times the typical selling hour
LEARN_CAP_ALPHA = 0.05  # EW weight of a selling hour in the typical size (log scale)


@dataclass(frozen=True)
class DemandConfig:
    model: str = "holtwinters"
    horizon_hours: int = 48
    grace_minutes: float = 15.0
    censor_minutes: float = 10.0
    baseline_alpha: float = 0.1
    tz: str = "UTC"  # the store's zone: weekprofile's hours of the week are local

    @classmethod
    def from_settings(cls, settings: Settings) -> DemandConfig:
        return cls(
            model=settings.demand_model,
            horizon_hours=max(SEASON, math.ceil(settings.horizon_hours)),
            grace_minutes=settings.demand_grace_minutes,
            censor_minutes=settings.demand_censor_minutes,
            tz=settings.store_tz,
        )


@dataclass
class DemandTracker:
    """Hourly buckets + baseline rate + the encoded forecaster and its cached forecast."""

    alpha: float = 0.1
    rate: float = 0.0  # EWMA of closed hours: the flat fallback until the model is ready
    hours_seen: int = 0  # uncensored hours learned
    bucket_hour: int | None = None  # the oldest hour not closed yet
    buckets: dict[int, list[float]] = field(default_factory=dict)  # hour -> [qty, empty seconds]
    empty_since: float | None = None  # epoch seconds the shelf has been empty since
    clock: float = 0.0  # newest event time seen (epoch seconds)
    model: bytes | None = None  # the Forecaster, `model_codec.encode_forecaster`
    kind: str | None = None
    fc: list[float] = field(default_factory=list)  # forecast units/hour from hour fc_base on
    fc_base: int = 0
    dispersion: float = 1.0
    # Weekday factors (Monday = 0, mean 1; empty = none learned yet): the model learns demand
    # divided by its day's factor and the forecast is multiplied back, so an hourly model that
    # cannot learn weekdays in weeks still forecasts a Saturday above a Wednesday. Learned when
    # a day closes: the day's demand over the weekday-adjusted daily level `day_level`.
    wd: list[float] = field(default_factory=list)
    day_y: float | None = None  # demand of the day being closed (None: joined mid-day)
    day_c: float = 0.0  # the part of it estimated for censored hours
    day_level: float = 0.0  # EW mean of weekday-adjusted daily demand
    days: int = 0  # whole days learned
    typical: float = 0.0  # EW mean of log(units) of the selling hours learned (outlier guard)
    selling: int = 0  # selling hours learned
    _forecaster: Forecaster | None = field(default=None, repr=False, compare=False)
    _cum: tuple[list[float], list[float], list[float], float] | None = field(default=None, repr=False, compare=False)

    # --- per event (cheap) ---------------------------------------------------------------------
    # Each takes the event time as a datetime, or as epoch seconds (`..._at`: the worker has
    # them from the event already, and converting once per call adds up at 50k events/s).
    def add_sale(self, ts: datetime, qty: int) -> None:
        self.add_sale_at(ts.timestamp(), qty)

    def add_sale_at(self, t: float, qty: int) -> None:
        hour = int(t // 3600)
        if self.bucket_hour is None:
            self.bucket_hour = hour
        if hour < self.bucket_hour:
            return  # later than the grace: its hour is closed and learned
        bucket = self.buckets.get(hour)
        if bucket is None:
            self.buckets[hour] = [float(qty), 0.0]
        else:
            bucket[0] += qty

    def shelf_seen(self, ts: datetime, empty: bool) -> None:
        """The shelf's state as of `ts` (after the event): opens/ends an empty interval."""
        self.shelf_seen_at(ts.timestamp(), empty)

    def shelf_seen_at(self, t: float, empty: bool) -> None:
        if self.bucket_hour is None:
            self.bucket_hour = int(t // 3600)
        if empty and self.empty_since is None:
            self.empty_since = t
        elif not empty and self.empty_since is not None:
            self._add_empty(self.empty_since, t)
            self.empty_since = None

    def _add_empty(self, start: float, end: float) -> None:
        assert self.bucket_hour is not None
        start = max(start, self.bucket_hour * 3600.0)
        h = int(start // 3600)
        while start < end and h - self.bucket_hour < MAX_GAP_HOURS:
            stop = min(end, (h + 1) * 3600.0)
            bucket = self.buckets.setdefault(h, [0.0, 0.0])
            bucket[1] += stop - start
            start, h = stop, h + 1

    def advance(self, ts: datetime, cfg: DemandConfig) -> int:
        """Move the SKU's event clock; closes and learns the hours now past. Returns hours closed."""
        return self.advance_at(ts.timestamp(), cfg)

    def advance_at(self, t: float, cfg: DemandConfig) -> int:
        if t > self.clock:
            self.clock = t
        if self.bucket_hour is None:
            self.bucket_hour = int(t // 3600)
        upto = int((self.clock - cfg.grace_minutes * 60) // 3600)  # hours < upto are closed
        if upto <= self.bucket_hour:
            return 0
        return self._close(upto, cfg)

    # --- per closed hour (the model) -------------------------------------------------------------
    def forecaster(self, cfg: DemandConfig) -> Forecaster:
        if self._forecaster is None:
            if self.model is not None and self.kind == cfg.model:
                self._forecaster = decode_forecaster(self.model, cfg.model)
            else:
                self._forecaster = Forecaster(cfg.model, tz=cfg.tz)  # none yet, or the setting changed
                self.kind = cfg.model
        return self._forecaster

    def _close(self, upto: int, cfg: DemandConfig) -> int:
        assert self.bucket_hour is not None
        f = self.forecaster(cfg)
        start = self.bucket_hour
        if upto - start > MAX_GAP_HOURS:
            # A long silence: skip whole weeks so hour-of-day and weekday stay where they were.
            skip = ((upto - start - MAX_GAP_HOURS) // 168 + 1) * 168
            start += skip
            self.buckets = {h: b for h, b in self.buckets.items() if h >= start}
            self.day_y = None
            if f.next_hour is not None:
                f.next_hour += skip
        if f.next_hour is not None and f.next_hour != start:
            f.next_hour = start  # first close after a restore from an older format
        censor_s = cfg.censor_minutes * 60
        weekdays = f.kind not in ("linear", "weekprofile")  # own weekday features
        for h in range(start, upto):
            if h % SEASON == 0:
                self.day_y, self.day_c = 0.0, 0.0
            w = self.wd[weekday_of(h)] if self.wd else 1.0
            qty, empty_s = self.buckets.pop(h, (0.0, 0.0))
            cap = self._guard(qty)
            qty = min(qty, cap)
            if self.empty_since is not None and self.empty_since < (h + 1) * 3600:
                empty_s += (h + 1) * 3600 - max(self.empty_since, h * 3600)
            censored = empty_s > censor_s
            estimate = None
            if censored:
                # Sales while stocked, scaled to the whole hour (at most x UNCENSOR_MAX): the
                # demand the empty shelf turned away. A lower bound (the sales) at worst.
                stocked = max(3600.0 - empty_s, 3600.0 / UNCENSOR_MAX)
                estimate = min(qty * 3600.0 / stocked, cap)
            if not censored:
                self.hours_seen += 1
                a = max(self.alpha, 1.0 / self.hours_seen)  # a plain mean first, then EWMA
                self.rate += a * (qty - self.rate)
            pred = f.learn(h, qty / w, censored, estimate / w if estimate is not None else None)
            if self.day_y is not None:
                # The demand the model learned for this hour (a censored hour: its estimate or
                # the forecast, whichever is higher), in units.
                if censored:
                    guess = max((pred or 0.0) * w, estimate if estimate is not None else qty)
                    self.day_y += guess
                    self.day_c += guess
                else:
                    self.day_y += qty
                if h % SEASON == SEASON - 1:
                    # A day whose demand is mostly estimated says what the model already thought.
                    if weekdays and self.day_c <= WEEKDAY_MAX_CENSORED * self.day_y:
                        self._learn_day(weekday_of(h), self.day_y)
                    self.day_y = None
        self.bucket_hour = upto
        fc = f.forecast(cfg.horizon_hours) if f.ready else []
        if self.wd:
            wd = self.wd
            fc = [v * wd[weekday_of(upto + i)] for i, v in enumerate(fc)]
        self.fc = [round(v, 4) for v in fc]
        self.fc_base = upto
        self.dispersion = round(f.dispersion, 4)
        self.model = encode_forecaster(f)
        return upto - start

    def _guard(self, qty: float) -> float:
        """The most one hour may teach (inf while the guard is warming up); a selling hour,
        capped, updates the typical size. Geometric, not arithmetic: a few huge lines among the
        first hours then inflate the cap by a factor, not by their size."""
        # Before any sale the typical hour is 1 unit: a SKU's first hour teaches at most K units,
        # and each of the next few can raise the cap by a factor (the bulk item that really
        # sells 500 an hour is learned in full from about its fourth selling hour).
        cap = LEARN_CAP_K * math.exp(self.typical)
        if qty > 0:
            self.selling += 1
            a = max(LEARN_CAP_ALPHA, 1.0 / self.selling)
            self.typical += a * (math.log(min(qty, cap)) - self.typical)
        return cap

    def _learn_day(self, weekday: int, y: float) -> None:
        """A whole day closed with `y` units of demand: update its weekday's factor and the
        weekday-adjusted daily level. Closed form, once per SKU and day.

        The day's ratio to the level, (y + K·w) / (level + K), is shrunk toward the factor it
        had by K = WEEKDAY_PRIOR_UNITS units (a slow mover's day of 3 sales says little), and
        enters with weight 1 / (weeks seen + 1), at least WEEKDAY_MIN_RATE: the first week's
        ratio counts fully, later ones average in. The factors are then scaled to mean 1 (the
        level is scaled the other way), so they carry the weekday pattern only and the model's
        own level the rest."""
        self.days += 1
        if self.day_level <= 0.0:
            self.day_level = y  # the first whole day: the level, no ratio yet
            return
        wd = self.wd or [1.0] * 7
        old = wd[weekday]
        ratio = (y + WEEKDAY_PRIOR_UNITS * old) / (self.day_level + WEEKDAY_PRIOR_UNITS)
        g = max(WEEKDAY_MIN_RATE, 1.0 / (1 + (self.days - 1) // 7))
        lo, hi = WEEKDAY_RANGE
        wd[weekday] = min(hi, max(lo, old + g * (ratio - old)))
        mean = sum(wd) / 7
        self.wd = [round(v / mean, 4) for v in wd]
        a = max(LEVEL_DAY_ALPHA, 1.0 / self.days)
        level = self.day_level * mean
        self.day_level = round(level + a * (y / self.wd[weekday] - level), 3)

    # --- reading the forecast --------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return len(self.fc) >= SEASON

    def point_at(self, hour: int) -> float:
        """Point forecast of one epoch hour's units: the median of a Poisson count with the
        mean `rate_at(hour)` (a whole number; minimises the expected absolute error)."""
        return poisson_median(self.rate_at(hour))

    def point_over(self, ts: datetime, hours: float) -> float:
        """Point forecast of the units sold in the `hours` after `ts` (the Poisson median of
        the mean demand over them)."""
        return poisson_median(self.demand_over(ts, hours)[0])

    def rate_at(self, hour: int) -> float:
        """Forecast units for one epoch hour: the cached forecast, cycled by day past its end
        (with weekday factors: each cycled hour rescaled from its source day's to its own)."""
        if not self.ready:
            return self.rate
        i = hour - self.fc_base
        n = len(self.fc)
        if i < 0:
            i = 0
        elif i >= n:
            j, k = divmod(i - n, SEASON)
            ra, rb, c = self._tail_ratios(j)
            return self.fc[n - SEASON + k] * (ra if k < c else rb)
        return self.fc[i]

    def _tail_ratios(self, cycle: int) -> tuple[float, float, int]:
        """Past the cached forecast its last 24 hours repeat; those hours span two weekdays, A
        (the first c of them) and A + 1. Repeat number `cycle` (0 = the first day past the end)
        falls on weekdays A + cycle + 1 and A + cycle + 2: the factors (ra, rb) that rescale
        the two parts, and c."""
        s0 = self.fc_base + len(self.fc) - SEASON
        c = SEASON - s0 % SEASON
        if not self.wd:
            return 1.0, 1.0, c
        wd, a = self.wd, weekday_of(s0)
        return (wd[(a + cycle + 1) % 7] / wd[a], wd[(a + cycle + 2) % 7] / wd[(a + 1) % 7], c)

    def _tail_sum(self, cycles: int) -> float:
        """Forecast units over the first `cycles` whole repeats past the cached forecast."""
        _, day, day_total = self._prefix()
        if not self.wd or cycles <= 0:
            return max(cycles, 0) * day_total
        s0 = self.fc_base + len(self.fc) - SEASON
        c = SEASON - s0 % SEASON
        wd, a = self.wd, weekday_of(s0)
        weeks, part = divmod(cycles, 7)
        total_w = sum(wd)
        # sum over repeats j < cycles of wd[a + j + 1] (and of wd[a + j + 2])
        sa = weeks * total_w + sum(wd[(a + 1 + j) % 7] for j in range(part))
        sb = weeks * total_w + sum(wd[(a + 2 + j) % 7] for j in range(part))
        return day[c] / wd[a] * sa + (day_total - day[c]) / wd[(a + 1) % 7] * sb

    def _tail_within(self, cycle: int, x: float) -> float:
        """Forecast units in repeat `cycle` from its start to `x` hours into it (0 <= x <= 24)."""
        _, day, _ = self._prefix()
        n = len(self.fc)
        k = min(math.floor(x), SEASON - 1)
        frac = x - k
        ra, rb, c = self._tail_ratios(cycle)
        if k < c:
            return ra * (day[k] + frac * self.fc[n - SEASON + k])
        return ra * day[c] + rb * (day[k] - day[c] + frac * self.fc[n - SEASON + k])

    def segments(self, t: float, max_hours: float) -> Any:
        """(duration in hours, rate) pieces from epoch second `t` on, hour by hour."""
        hour = int(t // 3600)
        first = ((hour + 1) * 3600 - t) / 3600
        yield first, self.rate_at(hour)
        done = first
        while done < max_hours:
            hour += 1
            yield 1.0, self.rate_at(hour)
            done += 1.0

    # Projections run for every published state (several per event batch), so they read a
    # prefix sum of the cycled forecast instead of walking it hour by hour: O(1) per
    # question instead of up to 14 days of hourly steps. `segments` stays the definition the
    # tests compare against.
    def _prefix(self) -> tuple[list[float], list[float], float]:
        """(cumulative forecast over fc, cumulative over its last day, that day's total)."""
        if self._cum is None or self._cum[0] is not self.fc:  # fc is replaced, never mutated
            cum = [0.0]
            for v in self.fc:
                cum.append(cum[-1] + v)
            day = [0.0]
            for v in self.fc[-SEASON:]:
                day.append(day[-1] + v)
            self._cum = (self.fc, cum, day, day[-1])
        return self._cum[1:]

    def _cumulative(self, x: float) -> float:
        """Forecast units from the start of hour `fc_base` to `x` hours after it (x may be < 0)."""
        cum, day, day_total = self._prefix()
        n = len(self.fc)
        k = math.floor(x)
        frac = x - k
        if k < 0:
            return x * self.fc[0]  # before the forecast starts its first hour stands in
        if k < n:
            return cum[k] + frac * self.fc[k]
        if self.wd:
            cycle, i = divmod(k - n, SEASON)
            return cum[n] + self._tail_sum(cycle) + self._tail_within(cycle, i + frac)
        weeks, i = divmod(k - n, SEASON)
        return cum[n] + weeks * day_total + day[i] + frac * self.fc[n - SEASON + i]

    def coming_hour(self, ts: datetime) -> float:
        """Expected units in the 60 minutes from `ts` (the published `demand_per_hour`)."""
        if not self.ready:
            return self.rate
        x = ts.timestamp() / 3600 - self.fc_base
        return self._cumulative(x + 1.0) - self._cumulative(x)

    def hours_until(self, ts: datetime, units: float, max_hours: float = 24 * 14) -> float | None:
        """Hours until cumulative forecast demand from `ts` reaches `units` (None: not within
        `max_hours`); a closed night costs hours but no units, as on a real shelf."""
        if units <= 0:
            return 0.0
        if not self.ready:
            return units / self.rate if self.rate > 1e-9 else None
        x0 = ts.timestamp() / 3600 - self.fc_base
        target = self._cumulative(x0) + units
        cum, day, day_total = self._prefix()
        n = len(self.fc)
        # Find the hour k whose end first reaches the target, then the fraction inside it.
        if x0 < 0:  # before the forecast: the first hour's rate until hour 0
            r = self.fc[0]
            if r > 0 and target <= 0.0:
                return target / r - x0
            k = 0
        else:
            k = math.floor(x0)
        if k < n and target <= cum[n]:
            k = max(k, bisect_left(cum, target) - 1)
            x = k + ((target - cum[k]) / self.fc[k] if self.fc[k] > 0 else 0.0)
        elif self.wd:
            tail = self._tail_until(target - cum[n])
            if tail is None:
                return None
            x = tail
        else:
            if day_total <= 0:
                return None
            rest = target - cum[n]
            weeks = max(0, math.floor(rest / day_total))
            if weeks and rest - weeks * day_total <= 0:
                weeks -= 1  # land inside the day that reaches the target, never past it
            rest -= weeks * day_total
            i = bisect_left(day, rest) - 1
            i = max(0, min(i, SEASON - 1))
            r = self.fc[n - SEASON + i]
            x = n + weeks * SEASON + i + ((rest - day[i]) / r if r > 0 else 0.0)
        hours = max(0.0, x - x0)
        # The same horizon as walking `segments`: the partial first hour, then whole hours.
        first = math.floor(x0) + 1 - x0
        limit = first + max(0, math.ceil(max_hours - first))
        return hours if hours <= limit else None

    def _tail_until(self, rest: float) -> float | None:
        """Hours from the forecast's start until `rest` units past its cached end are sold
        (weekday factors: the repeats differ by day, so whole weeks first, then day by day)."""
        _, day, day_total = self._prefix()
        n = len(self.fc)
        week = self._tail_sum(7)
        if week <= 0:
            return None
        weeks = max(0, math.floor(rest / week))
        if weeks and rest - weeks * week <= 0:
            weeks -= 1  # land inside the week that reaches the target, never past it
        rest -= weeks * week
        for j in range(7):
            ra, rb, c = self._tail_ratios(j)
            first, second = ra * day[c], rb * (day_total - day[c])
            if rest <= first + second or j == 6:
                break
            rest -= first + second
        if rest <= first and ra > 0:
            y = rest / ra
            i = max(0, min(bisect_left(day, y) - 1, c - 1))
        else:
            y = day[c] + (rest - first) / rb if rb > 0 else day[SEASON]
            i = max(c, min(bisect_left(day, y) - 1, SEASON - 1))
        r = self.fc[n - SEASON + i]
        return n + (weeks * 7 + j) * SEASON + i + ((y - day[i]) / r if r > 0 else 0.0)

    def demand_over(self, ts: datetime, hours: float) -> tuple[float, float]:
        """(mean, variance) of demand in the `hours` after `ts`: sum of hourly means and of
        the quasi-Poisson variances phi·f_h (so z·sqrt(var) is z·sigma·sqrt(L) for flat f)."""
        if not self.ready:
            mean = self.rate * hours
            return mean, self.dispersion * mean
        x = ts.timestamp() / 3600 - self.fc_base
        mean = self._cumulative(x + hours) - self._cumulative(x)
        return mean, self.dispersion * mean

    def band(self, z: float = 1.64) -> tuple[list[float], list[float]]:
        lo = [max(0.0, f - z * math.sqrt(self.dispersion * f)) for f in self.fc]
        hi = [f + z * math.sqrt(self.dispersion * f) for f in self.fc]
        return lo, hi

    # --- table format ----------------------------------------------------------------------------
    def round_sums(self) -> None:
        """The day sums to 3 decimals, in place, whenever a value is written: a tracker kept live
        after its value was written (`backroom.processing.LiveStates`) must be exactly the one
        that value reads back as (and the forecasts depend on them)."""
        self.day_c = round(self.day_c, 3)
        self.typical = round(self.typical, 4)
        if self.day_y is not None:
            self.day_y = round(self.day_y, 3)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (the table value is `backroom.state_codec`'s binary record)."""
        self.round_sums()
        return {
            "rate": self.rate,
            "hours_seen": self.hours_seen,
            "bucket_hour": self.bucket_hour,
            "buckets": {str(h): b for h, b in self.buckets.items()},
            "empty_since": self.empty_since,
            "clock": self.clock,
            "kind": self.kind,
            "model": None if self.model is None else base64.b64encode(self.model).decode("ascii"),
            "fc": self.fc,
            "fc_base": self.fc_base,
            "dispersion": self.dispersion,
            "wd": self.wd,
            "day_y": self.day_y,
            "day_c": self.day_c,
            "day_level": self.day_level,
            "days": self.days,
            "typical": self.typical,
            "selling": self.selling,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> DemandTracker:
        """The tracker `to_dict` described."""
        return cls(
            rate=data["rate"],
            hours_seen=data["hours_seen"],
            bucket_hour=data["bucket_hour"],
            buckets={int(h): list(b) for h, b in data["buckets"].items()},
            empty_since=data["empty_since"],
            clock=data["clock"],
            kind=data["kind"],
            model=None if data["model"] is None else base64.b64decode(data["model"]),
            fc=list(data["fc"]),
            fc_base=data["fc_base"],
            dispersion=data["dispersion"],
            wd=list(data["wd"]),
            day_y=data["day_y"],
            day_c=data["day_c"],
            day_level=data["day_level"],
            days=data["days"],
            typical=data["typical"],
            selling=data["selling"],
        )
