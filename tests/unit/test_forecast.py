"""Forecast math on series with known answers, the band, censoring, persistence.

    pytest tests/unit/test_forecast.py
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from backroom.demand.forecast import (
    SEASON_SMOOTHER,
    Forecaster,
    HourProfile,
    hour_features,
    smooth_season,
    weekday_of,
)
from backroom.demand.tracker import DemandConfig, DemandTracker

MONDAY = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
H0 = int(MONDAY.timestamp() // 3600)
# A store's day: closed at night, two peaks; zero at both ends of the day so no trend is seeded.
SHAPE = [0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 3, 4, 5, 4, 3, 3, 4, 5, 6, 5, 3, 2, 1, 0]


def test_weekday_and_features_of_an_epoch_hour() -> None:
    assert weekday_of(H0) == 0 and weekday_of(H0 + 24 * 5) == 5
    x = hour_features(H0 + 13)
    assert len(x) == 31 and sum(x.values()) == 2 and x["h13"] == 1 and x["d0"] == 1


def test_holtwinters_reproduces_a_noise_free_daily_shape_exactly() -> None:
    f = Forecaster("holtwinters_raw")
    for h in range(H0, H0 + 24 * 3):
        f.learn(h, SHAPE[h % 24])
    assert f.forecast(24) == pytest.approx(SHAPE, abs=1e-6)
    # The next hour's forecast is the value the learner reports before learning it.
    assert f.learn(H0 + 72, SHAPE[0]) == pytest.approx(SHAPE[0], abs=1e-6)


def test_smoothed_holtwinters_forecasts_the_smoothed_shape() -> None:
    """Level + smoothed indices = the smoothed shape (the weights sum to 1), clipped at 0."""
    f = Forecaster("holtwinters")
    for h in range(H0, H0 + 24 * 3):
        f.learn(h, SHAPE[h % 24])
    want = [max(0.0, v) for v in smooth_season([float(v) for v in SHAPE])]
    assert f.forecast(24) == pytest.approx(want, abs=1e-6)
    assert f.learn(H0 + 72, SHAPE[0]) == pytest.approx(want[0], abs=1e-6)


def test_season_smoother_keeps_quadratics_and_shrinks_noise() -> None:
    assert sum(SEASON_SMOOTHER[0:1]) + 2 * sum(SEASON_SMOOTHER[1:]) == pytest.approx(1.0)
    # A parabola (a daily peak) away from the wrap-around is kept exactly: no shaved peak.
    parabola = [5.0 - 0.04 * (i - 12) ** 2 + 0.1 * i for i in range(24)]
    smoothed = smooth_season(parabola)
    assert smoothed[3:21] == pytest.approx(parabola[3:21], abs=1e-9)
    assert smooth_season([2.5] * 24) == pytest.approx([2.5] * 24)
    # Independent noise: variance times sum(w^2) = 1/3.
    rng = random.Random(5)
    raw_var = out_var = 0.0
    for _ in range(400):
        noise = [rng.gauss(0.0, 1.0) for _ in range(24)]
        raw_var += sum(v * v for v in noise)
        out_var += sum(v * v for v in smooth_season(noise))
    assert out_var / raw_var == pytest.approx(1 / 3, rel=0.1)


def poisson(rng: random.Random, lam: float) -> int:
    """Inversion; plenty for small rates."""
    k, p, u = 0, math.exp(-lam), rng.random()
    c = p
    while u > c:
        k += 1
        p *= lam / k
        c += p
    return k


def sine_rate(h: int) -> float:
    return 1.0 + 0.8 * math.sin(2 * math.pi * (h % 24) / 24)


@pytest.mark.parametrize("kind", ["holtwinters", "profile"])
def test_a_sinusoidal_rate_is_recovered_from_sparse_counts(kind: str) -> None:
    """Poisson counts around 1 unit/h for two weeks: the smoothed hour-of-day rates are within
    0.2 units/h of the true rate on average, and closer than the raw Holt-Winters indices."""
    rng = random.Random(17)
    counts = [poisson(rng, sine_rate(h)) for h in range(H0, H0 + 24 * 14)]

    def mean_abs_error(k: str) -> float:
        f = Forecaster(k)
        for h, y in zip(range(H0, H0 + 24 * 14), counts, strict=True):
            f.learn(h, y)
        start = f.next_hour or 0
        fc = f.forecast(24)
        return sum(abs(v - sine_rate(start + i)) for i, v in enumerate(fc)) / 24

    smoothed, raw = mean_abs_error(kind), mean_abs_error("holtwinters_raw")
    assert smoothed < 0.2
    assert smoothed < 0.8 * raw


def test_hour_profile_is_the_gamma_poisson_posterior_mean() -> None:
    """Without forgetting, after n days each hour's rate is (n·y_i + kappa·neighbours' mean) /
    (n + kappa); an hour never seen takes its neighbours' mean."""
    p = HourProfile(kappa=4.0, forget=0.0)
    days = 6
    for _ in range(days):
        for i in range(24):
            if i != 9:
                p.learn_one(i, float(SHAPE[i]), level=False)
    got = p.profile()
    for i in (3, 7, 12, 18, 23):
        prior = (SHAPE[i - 1] + SHAPE[(i + 1) % 24]) / 2
        assert got[i] == pytest.approx((days * SHAPE[i] + 4.0 * prior) / (days + 4.0))
    assert got[9] == pytest.approx((SHAPE[8] + SHAPE[10]) / 2)
    assert p.level() == 1.0  # nothing learned into the level: the profile as it is


def test_hour_profile_level_follows_a_busier_stretch() -> None:
    """A flat 3/h SKU whose demand doubles: a day later the hour-of-day means (one day in ten)
    have barely moved, the level has, and the forecast is most of the way to 6."""
    f = Forecaster("profile")
    h = H0
    for _ in range(24 * 10):
        f.learn(h, 3.0)
        h += 1
    assert f.forecast(1)[0] == pytest.approx(3.0, rel=0.02)
    for _ in range(24):
        f.learn(h, 6.0)
        h += 1
    assert f.model.profile()[h % 24] < 3.5
    assert 1.4 < f.model.level() < 2.0
    assert 4.5 < f.forecast(1)[0] <= 6.0


def test_profile_learns_a_censored_hour_only_above_its_forecast() -> None:
    f = Forecaster("profile")
    for h in range(H0, H0 + 24 * 5):
        f.learn(h, 2.0)
    before = list(f.model.sums)
    h = H0 + 24 * 5
    f.learn(h, 0.0, censored=True, estimate=0.5)  # below the forecast: says nothing
    assert f.model.sums == before and f.learned == 24 * 5 + 1
    f.learn(h + 1, 3.0, censored=True, estimate=4.5)  # above it: at least that much demand
    assert f.model.sums[(h + 1) % 24] == pytest.approx(before[(h + 1) % 24] * 0.95 + 4.5)
    assert f.observed == 24 * 5  # censored hours are not observations


def test_linear_model_learns_hour_and_weekday_effects() -> None:
    f = Forecaster("linear")
    for h in range(H0, H0 + 24 * 28):
        f.learn(h, SHAPE[h % 24] + (2.0 if weekday_of(h) == 5 else 0.0))
    fc = f.forecast(24 * 7)
    weekday = fc[:24]
    assert max(abs(a - b) for a, b in zip(weekday, SHAPE, strict=True)) < 1.0
    saturday = fc[24 * 5: 24 * 6]
    assert sum(saturday) - sum(weekday) == pytest.approx(48, rel=0.3)


def test_linear_fast_forecast_equals_river_predict_one() -> None:
    rng = random.Random(3)
    f = Forecaster("linear")
    for h in range(H0, H0 + 24 * 10):
        f.learn(h, rng.random() * 5)
    fast = f.forecast(48)
    slow = [max(0.0, f.model.predict_one(hour_features(h))) for h in range(f.next_hour or 0, (f.next_hour or 0) + 48)]
    assert fast == pytest.approx(slow, abs=1e-9)


def test_residual_dispersion_of_poisson_counts_is_near_one() -> None:
    rng = random.Random(11)
    f = Forecaster("holtwinters", residual_alpha=0.01)

    for h in range(H0, H0 + 24 * 40):
        f.learn(h, poisson(rng, 4.0))
    assert 0.7 < f.dispersion < 1.5
    assert f.variance(4.0) == pytest.approx(4.0 * f.dispersion)
    assert f.variance(0.0) == 0.0


def test_hours_must_be_fed_in_order() -> None:
    f = Forecaster("holtwinters")
    f.learn(H0, 1)
    with pytest.raises(ValueError):
        f.learn(H0 + 2, 1)


@pytest.mark.parametrize("kind", ["holtwinters", "holtwinters_raw", "profile", "snarimax", "linear"])
def test_a_forecaster_survives_pickling_in_the_table(kind: str) -> None:
    f = Forecaster(kind)
    for h in range(H0, H0 + 48):
        f.learn(h, SHAPE[h % 24])
    blob = f.dumps()
    again = Forecaster.loads(blob)
    assert again.forecast(24) == f.forecast(24)
    assert len(blob) * 3 // 4 < 4000  # reported per model by the backtest


# --- the tracker: buckets, censoring, projections ----------------------------------------------


def feed_day(d: DemandTracker, day: int, cfg: DemandConfig, empty_from: int | None = None) -> None:
    """One day of SHAPE sales, spread over each hour; the shelf empty from hour `empty_from`."""
    for hour in range(24):
        base = MONDAY + timedelta(days=day, hours=hour)
        empty = empty_from is not None and hour >= empty_from
        if not empty:
            for i in range(SHAPE[hour]):
                t = base + timedelta(minutes=5 + 50 * i / max(SHAPE[hour], 1))
                d.add_sale(t, 1)
                d.shelf_seen(t, empty=False)
                d.advance(t, cfg)
        else:
            d.shelf_seen(base, empty=True)
        d.advance(base + timedelta(minutes=59), cfg)


def test_empty_shelf_hours_are_censored_not_learned_as_zero() -> None:
    cfg = DemandConfig(model="holtwinters")
    censored, naive = DemandTracker(), DemandTracker()
    for day in range(4):
        feed_day(censored, day, cfg)
        feed_day(naive, day, cfg)
    # Day 5: the shelf is empty from noon on. The censoring tracker knows; the other is told
    # the shelf was stocked (so it learns zeros).
    feed_day(censored, 4, cfg, empty_from=12)
    for hour in range(24):
        base = MONDAY + timedelta(days=4, hours=hour)
        if hour < 12:
            for i in range(SHAPE[hour]):
                naive.add_sale(base + timedelta(minutes=5 + i), 1)
        naive.shelf_seen(base, empty=False)
        naive.advance(base + timedelta(minutes=59), cfg)
    end = MONDAY + timedelta(days=5, hours=1)
    censored.advance(end, cfg)
    naive.advance(end, cfg)
    # Tomorrow's afternoon peak: the censored model still expects it (as the default model
    # forecasts an uncensored SHAPE: smoothed), the naive one less so.
    peak = int((MONDAY + timedelta(days=5, hours=18)).timestamp() // 3600)
    assert censored.rate_at(peak) == pytest.approx(smooth_season([float(v) for v in SHAPE])[18], abs=0.5)
    assert naive.rate_at(peak) < censored.rate_at(peak) - 0.5


def test_a_shelf_that_empties_every_day_still_learns_its_demand() -> None:
    """Sales in an hour the shelf sold out early are scaled to the stocked time: a SKU that
    empties at 12:20 every day must not learn its own (low) forecast for the afternoon."""
    cfg = DemandConfig(model="holtwinters")
    d = DemandTracker()
    for day in range(6):
        for hour in range(24):
            base = MONDAY + timedelta(days=day, hours=hour)
            if hour < 12 or SHAPE[hour] == 0:
                for i in range(SHAPE[hour]):
                    t = base + timedelta(minutes=5 + 50 * i / max(SHAPE[hour], 1))
                    d.add_sale(t, 1)
                    d.shelf_seen(t, empty=False)
                    d.advance(t, cfg)
                if SHAPE[hour] == 0:
                    d.shelf_seen(base, empty=False)  # restocked overnight
            else:
                # Stocked for the first 30 minutes, half the hour's demand sold, then empty.
                for i in range(SHAPE[hour] // 2):
                    t = base + timedelta(minutes=1 + 25 * i / max(SHAPE[hour] // 2, 1))
                    d.add_sale(t, 1)
                    d.shelf_seen(t, empty=False)
                    d.advance(t, cfg)
                d.shelf_seen(base + timedelta(minutes=30), empty=True)
            d.advance(base + timedelta(minutes=59), cfg)
    d.advance(MONDAY + timedelta(days=6, hours=1), cfg)
    afternoon = [int((MONDAY + timedelta(days=6, hours=h)).timestamp() // 3600) for h in range(12, 22)]
    learned = sum(d.rate_at(h) for h in afternoon)
    sold = sum(SHAPE[h] // 2 for h in range(12, 22))
    assert learned > 1.5 * sold  # well above what the empty shelf let through
    assert learned == pytest.approx(sum(SHAPE[12:22]), rel=0.25)


def test_late_events_within_the_grace_land_in_their_hour() -> None:
    cfg = DemandConfig(grace_minutes=15)
    d = DemandTracker()
    d.add_sale(MONDAY + timedelta(minutes=10), 1)
    d.advance(MONDAY + timedelta(minutes=65), cfg)  # a scan from the next hour arrives first
    d.add_sale(MONDAY + timedelta(minutes=55), 2)  # the late sale of hour 0
    d.advance(MONDAY + timedelta(minutes=80), cfg)  # now hour 0 closes
    assert d.hours_seen == 1 and d.rate == 3.0


def test_projection_walks_the_seasonal_forecast_over_a_closed_night() -> None:
    d = DemandTracker()
    evening = MONDAY + timedelta(hours=20)
    d.fc_base = int(evening.timestamp() // 3600)
    # 2 units 20-21 h, 1 unit 21-22 h, closed until 07 h, then 1 unit an hour.
    d.fc = [2.0, 1.0] + [0.0] * 9 + [1.0] * 37
    assert d.hours_until(evening, 2) == pytest.approx(1.0)
    assert d.hours_until(evening, 4) == pytest.approx(12.0)  # 3 by 22 h, the 4th at 08 h
    assert d.coming_hour(evening + timedelta(minutes=30)) == pytest.approx(1.5)
    mean, var = d.demand_over(evening, 2)
    assert mean == pytest.approx(3.0) and var == pytest.approx(3.0 * d.dispersion)
    # A flat rate would have said 4 units / (48 units / 48 h) = 4 h.
    assert d.hours_until(evening, 10_000) is None


def test_tracker_round_trips_through_json() -> None:
    cfg = DemandConfig()
    d = DemandTracker()
    for day in range(2):
        feed_day(d, day, cfg)
    again = DemandTracker.from_data(orjson.loads(orjson.dumps(d.to_dict())))
    assert again.to_dict() == d.to_dict()
    assert again.forecaster(cfg).forecast(24) == d.forecaster(cfg).forecast(24)


def test_holt_winters_survives_a_first_day_without_sales() -> None:
    from backroom.demand.forecast import SEASON, Forecaster

    f = Forecaster("holtwinters")
    for h in range(SEASON * 2):
        f.learn(1000 + h, 0.0)
    assert f.ready and all(v >= 0 for v in f.forecast(24))


def _walk_until(d: DemandTracker, ts: datetime, units: float, max_hours: float = 24 * 14) -> float | None:
    """The definition: walk the hourly segments until the cumulative demand reaches `units`."""
    elapsed, need = 0.0, float(units)
    for dur, r in d.segments(ts.timestamp(), max_hours):
        if dur * r >= need:
            return elapsed + need / r
        need -= dur * r
        elapsed += dur
    return None


def _walk_over(d: DemandTracker, ts: datetime, hours: float) -> float:
    total, left = 0.0, hours
    for dur, r in d.segments(ts.timestamp(), hours):
        take = min(dur, left)
        total += take * r
        left -= take
        if left <= 1e-9:
            break
    return total


@pytest.mark.parametrize("weekdays", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_prefix_sum_projections_equal_the_hourly_walk(seed: int, weekdays: bool) -> None:
    """The O(1) projections answer exactly what walking the cycled forecast hour by hour does,
    before, inside and after the cached forecast, with closed (zero) hours in it; with weekday
    factors the cycled days are rescaled per weekday (`rate_at` is the definition)."""
    rng = random.Random(seed)
    base = 490_000 + rng.randrange(24)  # the cached days straddle midnight at any hour
    fc = [0.0 if h % 24 < 7 else round(rng.uniform(0.0, 3.0), 4) for h in range(base, base + 48)]
    wd = [round(rng.uniform(0.6, 1.5), 4) for _ in range(7)] if weekdays else []
    d = DemandTracker(fc=fc, fc_base=base, rate=1.0, wd=wd)
    for _ in range(300):
        ts = datetime.fromtimestamp((base + rng.uniform(-3, 80)) * 3600, tz=UTC)
        units = rng.choice([0.5, 1, 3, 7, 20, 60, 150, rng.uniform(0, 400)])
        want = _walk_until(d, ts, units)
        got = d.hours_until(ts, units)
        assert (got is None) == (want is None), (ts, units, got, want)
        if want is not None:
            assert got == pytest.approx(want, abs=1e-6), (ts, units)
        hours = rng.uniform(0, 120)
        assert d.demand_over(ts, hours)[0] == pytest.approx(_walk_over(d, ts, hours), abs=1e-6)
        assert d.coming_hour(ts) == pytest.approx(_walk_over(d, ts, 1.0), abs=1e-6)


def test_weekday_factors_are_learned_once_a_day_and_scale_the_forecast() -> None:
    """Saturdays sell twice the other days: after two weeks the Saturday factor says so, the
    model learns weekday-adjusted demand, and Friday's forecast of Saturday (inside the cached
    48 h and in the cycled tail) is about twice a Thursday's."""
    cfg = DemandConfig(model="holtwinters")
    d = DemandTracker()
    for day in range(18):  # Monday 23 Nov .. Thursday 10 Dec
        times = 2 if day % 7 == 5 else 1
        for hour in range(24):
            base = MONDAY + timedelta(days=day, hours=hour)
            n = SHAPE[hour] * times
            for i in range(n):
                t = base + timedelta(minutes=5 + 50 * i / n)
                d.add_sale(t, 1)
                d.shelf_seen(t, empty=False)
                d.advance(t, cfg)
            d.advance(base + timedelta(minutes=59), cfg)
        d = DemandTracker.from_data(orjson.loads(orjson.dumps(d.to_dict())))  # as the table does
    assert d.days == 17 and len(d.wd) == 7 and sum(d.wd) == pytest.approx(7, abs=1e-3)
    others = [w for i, w in enumerate(d.wd) if i != 5]
    assert 1.6 < d.wd[5] / max(others) and d.wd[5] / min(others) < 2.4
    friday = MONDAY + timedelta(days=18)  # Friday 11 Dec, 00:00
    h = int(friday.timestamp() // 3600)
    saturday, thursday = sum(d.rate_at(h + 24 + i) for i in range(24)), sum(SHAPE)
    assert saturday == pytest.approx(2 * thursday, rel=0.2)
    # Past the cached 48 h: Sunday is an ordinary day again, next Saturday twice one.
    sunday = sum(d.rate_at(h + 48 + i) for i in range(24))
    next_saturday = sum(d.rate_at(h + 24 * 8 + i) for i in range(24))
    assert sunday == pytest.approx(thursday, rel=0.2)
    assert next_saturday == pytest.approx(saturday, rel=0.05)
    assert d.demand_over(friday, 72)[0] == pytest.approx(_walk_over(d, friday, 72), abs=1e-6)


def test_a_written_tracker_is_exactly_the_one_its_value_reads_back_as() -> None:
    """The worker keeps a state live after writing it (`backroom.processing.LiveStates`): every
    field must survive the table value unchanged, or a live key and a reloaded one drift apart.
    Days whose shelf empties mid-hour add fractional estimates to the running day sums."""
    cfg = DemandConfig(model="holtwinters")
    d = DemandTracker()
    fields = [f.name for f in dataclasses.fields(DemandTracker) if not f.name.startswith("_")]
    for day in range(3):
        for hour in range(24):
            base = MONDAY + timedelta(days=day, hours=hour)
            for i in range(SHAPE[hour]):
                t = base + timedelta(minutes=1 + 30 * i / max(SHAPE[hour], 1))
                d.add_sale(t, 1)
                d.shelf_seen(t, empty=False)
                d.advance(t, cfg)
            d.shelf_seen(base + timedelta(minutes=37), empty=hour >= 12)
            d.advance(base + timedelta(minutes=59), cfg)
            value = d.to_dict()
            back = DemandTracker.from_data(orjson.loads(orjson.dumps(value)))
            assert {f: getattr(back, f) for f in fields} == {f: getattr(d, f) for f in fields}, (day, hour)
    assert d.day_y is not None and d.day_y % 1 > 0  # the fractions were there


# --- point forecasts and the outlier guard ------------------------------------------------------


def _poisson_median_by_pmf(mean: float) -> int:
    k, cdf = 0, 0.0
    while True:
        cdf += math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))
        if cdf >= 0.5:
            return k
        k += 1


@pytest.mark.parametrize("mean", [0.01, 0.5, 0.69, 0.7, 1.0, 1.68, 1.7, 3.3, 12.0, 49.9, 50.1, 73.4, 400.0, 5000.5])
def test_poisson_median_is_the_median_of_the_pmf(mean: float) -> None:
    from backroom.demand.forecast import poisson_median

    assert poisson_median(mean) == _poisson_median_by_pmf(mean)


def test_poisson_median_of_nothing_is_zero_and_it_minimises_absolute_error() -> None:
    from backroom.demand.forecast import poisson_median

    assert poisson_median(0.0) == 0.0 and poisson_median(-1.0) == 0.0
    # E|Y - x| for Y ~ Poisson(0.6): the median (0) beats the mean (0.6).
    pmf = [math.exp(-0.6) * 0.6**k / math.factorial(k) for k in range(30)]

    def cost(x: float) -> float:
        return sum(p * abs(k - x) for k, p in enumerate(pmf))

    assert poisson_median(0.6) == 0.0 and cost(0.0) < cost(0.6)


def test_tracker_point_forecast_is_the_poisson_median_of_its_mean() -> None:
    from backroom.demand.forecast import poisson_median

    cfg = DemandConfig()
    d = DemandTracker()
    for day in range(3):
        feed_day(d, day, cfg)
    assert d.ready
    hours = [d.fc_base + i for i in range(48)]
    assert [d.point_at(h) for h in hours] == [poisson_median(d.rate_at(h)) for h in hours]
    noon = MONDAY + timedelta(days=3, hours=12)
    assert d.point_over(noon, 6) == poisson_median(d.demand_over(noon, 6)[0])
    assert all(float(d.point_at(h)).is_integer() for h in hours)


def _steady_then_huge(huge: float | None) -> DemandTracker:
    """Two weeks of ~5 units in each open hour (9-17 h), then (optionally) one hour selling
    `huge` units, then three more days."""
    cfg = DemandConfig()
    d = DemandTracker()
    rng = random.Random(5)
    for h in range(H0, H0 + 24 * 17):
        if h == H0 + 24 * 14 + 11 and huge:
            d.add_sale_at(h * 3600 + 60, int(huge))
        elif 9 <= h % 24 < 17:
            d.add_sale_at(h * 3600 + 60, poisson(rng, 5.0))
        d.advance_at((h + 1) * 3600 + 16 * 60, cfg)
    return d


def test_one_huge_line_teaches_the_model_at_most_k_typical_hours() -> None:
    from backroom.demand.tracker import LEARN_CAP_K

    calm = _steady_then_huge(None)
    hit = _steady_then_huge(80_995)
    typical = math.exp(calm.typical)
    assert 3.0 < typical < 6.0  # the geometric mean of ~5-unit hours
    # The wholesale line moves next days' forecast by what K typical hours could, not 80,995.
    day = [calm.fc_base + i for i in range(24)]
    calm_total = sum(calm.rate_at(h) for h in day)
    hit_total = sum(hit.rate_at(h) for h in day)
    assert hit_total < calm_total + LEARN_CAP_K * typical
    assert hit.dispersion < 3 * max(calm.dispersion, 1.0)
    # The typical size barely moves: the line entered capped, and on a log scale.
    assert math.exp(hit.typical) < 1.5 * typical


def test_the_guard_leaves_ordinary_hours_alone() -> None:
    # Nothing in the steady series is near K x typical: the model learns every hour as it sold.
    from backroom.demand import tracker as tr

    d = _steady_then_huge(None)
    old = tr.LEARN_CAP_K
    try:
        tr.LEARN_CAP_K = math.inf
        free = _steady_then_huge(None)
    finally:
        tr.LEARN_CAP_K = old
    assert d.fc == free.fc and d.dispersion == free.dispersion


def test_a_new_skus_first_huge_line_is_capped_too() -> None:
    # Nothing to compare the very first sale with: it teaches at most K units (typical 1), and
    # a real bulk seller is learned in full within a few selling hours.
    from backroom.demand.tracker import LEARN_CAP_K

    cfg = DemandConfig()
    d = DemandTracker()
    for h in range(H0, H0 + 24 * 3):
        if h == H0 + 24 + 10:
            d.add_sale_at(h * 3600 + 60, 74_215)
        d.advance_at((h + 1) * 3600 + 16 * 60, cfg)
    assert sum(d.fc[:24]) < 2 * LEARN_CAP_K
    bulk = DemandTracker()
    for h in range(H0, H0 + 24 * 3):
        if 9 <= h % 24 < 17:
            bulk.add_sale_at(h * 3600 + 60, 500)
        bulk.advance_at((h + 1) * 3600 + 16 * 60, cfg)
    assert math.exp(bulk.typical) > 200 and LEARN_CAP_K * math.exp(bulk.typical) > 500


def test_guard_state_round_trips() -> None:
    d = _steady_then_huge(None)
    data = orjson.loads(orjson.dumps(d.to_dict()))
    assert DemandTracker.from_data(data).to_dict() == d.to_dict()
    assert data["selling"] > 100 and data["typical"] > 0


def test_one_huge_residual_moves_the_dispersion_a_bounded_step() -> None:
    from backroom.demand.forecast import DISPERSION_STEP_MAX

    f = Forecaster("holtwinters", residual_alpha=0.03)
    for h in range(H0, H0 + 48):
        f.learn(h, 0.0)
    before = f.dispersion
    f.learn(H0 + 48, 74_215.0)
    assert f.dispersion <= before + 0.03 * DISPERSION_STEP_MAX


def test_the_week_profile_gets_no_second_set_of_weekday_factors() -> None:
    cfg = DemandConfig(model="weekprofile")
    d = DemandTracker()
    for day in range(15):
        feed_day(d, day, cfg)
    assert d.wd == [] and d.ready
    hw = DemandTracker()
    for day in range(15):
        feed_day(hw, day, DemandConfig())
    assert len(hw.wd) == 7


def test_local_hour_follows_daylight_saving() -> None:
    from backroom.demand.forecast import local_hour

    winter = int(datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp() // 3600)
    summer = int(datetime(2026, 7, 15, 12, tzinfo=UTC).timestamp() // 3600)
    assert local_hour("UTC", summer) == summer
    assert local_hour("Europe/London", winter) == winter
    assert local_hour("Europe/London", summer) == summer + 1
    assert local_hour("America/New_York", winter) % 24 == 7


@pytest.mark.parametrize(("tz", "opens_at_7_utc"), [("Europe/London", True), ("UTC", False)])
def test_week_profile_keeps_local_opening_hours_across_the_clock_change(tz: str, opens_at_7_utc: bool) -> None:
    # A shop open 08-17 local time; clocks go forward on 2026-03-29 (08 local = 07 UTC after).
    from zoneinfo import ZoneInfo

    f = Forecaster("weekprofile", tz=tz)
    first = int(datetime(2026, 2, 2, tzinfo=UTC).timestamp() // 3600)
    last = int(datetime(2026, 4, 6, tzinfo=UTC).timestamp() // 3600)  # a Monday, after the change
    for h in range(first, last):
        local = datetime.fromtimestamp(h * 3600, UTC).astimezone(ZoneInfo("Europe/London"))
        f.learn(h, 3.0 if 8 <= local.hour < 17 else 0.0)
    seven_utc = f.forecast_from(last + 7, 1)[0]  # 08:00 local, the first open hour
    assert (seven_utc > 1.5) is opens_at_7_utc
    sixteen_utc = f.forecast_from(last + 16, 1)[0]  # 17:00 local: closed
    assert (sixteen_utc < 0.5) is opens_at_7_utc


def test_store_tz_setting_must_be_a_known_zone() -> None:
    from pydantic import ValidationError

    from backroom.settings import Settings

    assert Settings(_env_file=None, store_tz="Europe/London").store_tz == "Europe/London"  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(_env_file=None, store_tz="Mars/Olympus")  # type: ignore[call-arg]
    assert DemandConfig.from_settings(Settings(_env_file=None, store_tz="Asia/Tokyo")).tz == "Asia/Tokyo"  # type: ignore[call-arg]
