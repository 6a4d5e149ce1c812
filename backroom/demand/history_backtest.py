"""Backtest on a store's own history: forecasts and reorders replayed over real sales.

    backroom backtest --history data/processed/BreadBasket_DMS.parquet [--bucket 1d] [--json]
    from backroom.demand.history_backtest import history_backtest
    history_backtest(Path("sales.parquet"), settings)

Input: a processed sales file from `backroom clean` (ts, store_id, sku, qty). No Kafka, no wall
clock: every store×SKU's hourly series goes, hour by hour in event time, through the live
worker's own `DemandTracker` (the model `BACKROOM_DEMAND_MODEL` names, its weekday factors and
forecast cache) and Backroom's reorder policy (`reorder_levels`, `order_quantity`). Tests:
`pytest tests/unit/test_history_backtest.py`.

- SKUs: those selling at least `min_per_day` units a day on average over the file's span (the
  busiest `top` of them); the threshold is in the JSON. Slower movers are too sparse to score
  per hour; `--bucket 1d` scores them per day.
- Forecast, rolling origin: the first `warmup_days` only teach the models; from then on, at the
  start of each bucket, the forecast made from everything before it is scored against the
  bucket's sales (hourly: the next hour, forecast at its start from every hour before it, as
  the worker forecasts it; daily: the next 24 hours, forecast at midnight UTC). Hourly runs
  also report `wape_day_ahead`: the same hours, each forecast at the start of its day
  (midnight UTC, from everything before the day), the way a store plans a day. Every hour of
  the file is scored, closed hours included (they cost only what is forecast for them).
  WAPE = sum |actual - forecast| / sum actual over the chosen SKUs and scored hours, per SKU
  and overall. `wape` scores the tracker's point forecast (`point_at`: the Poisson median of
  its mean, the number that minimises absolute error), `wape_mean` the mean itself (what the
  reorder maths use); next to them the seasonal-naive forecast (the same hour, or day, a week
  earlier) and each River model of `backroom.demand.forecast` fed the same hourly series (their
  means).
- Reorders: from the end of the warm-up the SKU's real sales are replayed as demand against
  (a) Backroom's policy: at every hour, position (on hand + on order) at or below the reorder
  point orders up to the order-up-to level in whole case packs, arriving a lead time later
  (`BACKROOM_SERVICE_LEVEL_Z`, `BACKROOM_ORDER_CYCLE_HOURS`, `BACKROOM_DEFAULT_LEAD_TIME_HOURS`,
  `BACKROOM_DEFAULT_CASE_PACK`, `BACKROOM_REORDER_RECHECK`), and (b) a baseline: a periodic
  order-up-to review once per order cycle with a flat level S = c x (mean hourly demand of the
  warm-up) x (lead time + cycle), one c for every SKU (as one z serves every SKU in the policy),
  the smallest that reaches the policy's overall fill rate (bisection: the best such level in
  hindsight), so the two are compared on stock at the same fill rate. `baseline_tuned_per_sku`
  is an oracle next to it: each SKU's flat level tuned in hindsight to that SKU's fill rate. Demand that finds no stock is
  lost. Scores: fill rate (units sold / units demanded), stock-out hours (hours with demand
  left unserved), average stock on hand (units, time-weighted, per SKU) and orders placed.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from backroom.demand.forecast import ALL_MODELS, Forecaster
from backroom.demand.reorder import ReorderPolicy, order_quantity, reorder_levels
from backroom.demand.tracker import DemandConfig, DemandTracker
from backroom.settings import Settings

Bucket = Literal["1h", "1d"]
WEEK_HOURS = 168


class HistoryError(ValueError):
    """The history file cannot be backtested (unreadable, no sales, too short)."""


def load_hourly(path: Path) -> tuple[dict[str, dict[int, float]], int, int]:
    """Units per store×SKU and epoch hour, and the file's first and last hour (whole UTC days)."""
    if not path.is_file():
        raise HistoryError(f"{path}: no such file")
    lit = "'" + str(path).replace("'", "''") + "'"
    reader = f"read_parquet({lit})" if path.suffix == ".parquet" else f"read_csv({lit}, header = true)"
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(
            f"""SELECT CAST(store_id AS VARCHAR) || ':' || CAST(sku AS VARCHAR),
                       CAST(floor(epoch(CAST(ts AS TIMESTAMPTZ)) / 3600) AS BIGINT), sum(qty)
                FROM {reader} WHERE qty > 0 GROUP BY ALL"""
        ).fetchall()
    except duckdb.Error as exc:
        raise HistoryError(f"{path}: not a processed sales file (ts, store_id, sku, qty): {exc}") from None
    finally:
        con.close()
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for key, hour, qty in rows:
        series[key][int(hour)] = float(qty)
    if not series:
        raise HistoryError(f"{path}: no sales")
    first = min(min(s) for s in series.values())
    last = max(max(s) for s in series.values())
    return dict(series), first - first % 24, last - last % 24 + 24


@dataclass
class SkuRun:
    """One store×SKU's scores."""

    key: str
    actual: float = 0.0
    err: float = 0.0  # |actual - point forecast| (the Poisson median of the mean)
    err_mean: float = 0.0  # |actual - mean forecast|
    err_day: float = 0.0  # hourly, each hour of day D forecast at D's midnight UTC (point)
    err_day_mean: float = 0.0
    naive: float = 0.0
    models: dict[str, float] = field(default_factory=dict)
    forecasts: dict[int, float] = field(default_factory=dict)  # bucket start hour -> forecast
    policy: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    stock_policy: list[float] = field(default_factory=list)
    stock_baseline: list[float] = field(default_factory=list)


def _bucket_sum(y: dict[int, float], h: int, n: int) -> float:
    return sum(y.get(i, 0.0) for i in range(h, h + n))


def run_sku(key: str, y: dict[int, float], h0: int, h1: int, start: int, bucket: Bucket,
            settings: Settings, compare: bool, case_pack: int) -> SkuRun:
    cfg = DemandConfig.from_settings(settings)
    policy = ReorderPolicy(settings.service_level_z, settings.order_cycle_hours,
                           recheck=settings.reorder_recheck)
    lead = settings.default_lead_time_hours
    lead_steps = max(1, math.ceil(lead))
    grace = cfg.grace_minutes * 60
    tracker = DemandTracker()
    others = {kind: Forecaster(kind, tz=cfg.tz) for kind in ALL_MODELS} if compare else {}
    out = SkuRun(key, models={kind: 0.0 for kind in others})
    # Policy simulation state.
    on_hand = 0.0
    arrivals: dict[int, float] = defaultdict(float)
    on_order = 0.0
    sold = demanded = stock_sum = 0.0
    stockout_hours = orders = 0
    day_ahead: list[tuple[float, float]] = []  # today's hours as forecast at midnight UTC
    for h in range(h0, h1):
        # Everything before hour h is known: close it (the worker closes an hour `grace` after).
        tracker.advance_at(h * 3600 + grace, cfg)
        qty = y.get(h, 0.0)
        scored = h >= start
        if bucket == "1h":
            if scored:
                if h % 24 == 0 or not day_ahead:
                    day_ahead = [(tracker.rate_at(i), tracker.point_at(i)) for i in range(h, h - h % 24 + 24)]
                mean_d, point_d = day_ahead[h % 24 - (24 - len(day_ahead))]
                out.err_day += abs(qty - point_d)
                out.err_day_mean += abs(qty - mean_d)
                pred = tracker.rate_at(h)
                out.forecasts[h] = pred
                out.actual += qty
                out.err += abs(qty - tracker.point_at(h))
                out.err_mean += abs(qty - pred)
                out.naive += abs(qty - y.get(h - WEEK_HOURS, 0.0))
            for kind, f in others.items():
                p = f.learn(h, qty)
                if scored:
                    out.models[kind] += abs(qty - (p or 0.0))
        else:
            if h % 24 == 0 and scored:
                day = _bucket_sum(y, h, 24)
                when = datetime.fromtimestamp(h * 3600, UTC)
                pred = tracker.demand_over(when, 24)[0]
                out.forecasts[h] = pred
                out.actual += day
                out.err += abs(day - tracker.point_over(when, 24))
                out.err_mean += abs(day - pred)
                out.naive += abs(day - _bucket_sum(y, h - WEEK_HOURS, 24))
                for kind, f in others.items():
                    p = sum(f.forecast_from(h, 24)) if f.ready else 0.0
                    out.models[kind] += abs(day - p)
            for f in others.values():
                f.learn(h, qty)
        if scored:
            when = datetime.fromtimestamp(h * 3600, UTC)
            recheck = 0.0
            if policy.recheck:
                nxt = tracker.hours_until(when, 1.0, max_hours=24.0)
                recheck = 24.0 if nxt is None else nxt
            levels = reorder_levels(tracker, when, lead, policy, recheck)
            if h == start:
                on_hand = math.ceil(levels.order_up_to)  # the store starts stocked to its level
            got = arrivals.pop(h, 0.0)
            on_hand += got
            on_order -= got
            position = on_hand + on_order
            if position <= levels.reorder_point:
                q = order_quantity(position, levels.order_up_to, case_pack)
                arrivals[h + lead_steps] += q
                on_order += q
                orders += 1
            s = min(on_hand, qty)
            sold, demanded = sold + s, demanded + qty
            stockout_hours += qty > s
            on_hand -= s
            stock_sum += on_hand
            out.stock_policy.append(on_hand)
        if qty:
            tracker.add_sale_at(h * 3600, int(qty))
    hours = max(h1 - start, 1)
    out.policy = {"fill_rate": sold / demanded if demanded else 1.0, "stockout_hours": stockout_hours,
                  "avg_stock": stock_sum / hours, "orders": orders, "sold": sold, "demanded": demanded}
    return out


def _periodic(y: dict[int, float], start: int, h1: int, lead_steps: int, cycle: int, level: float,
              case_pack: int) -> tuple[dict[str, Any], list[float]]:
    """Periodic review, order-up-to `level` every `cycle` hours (from midnight UTC)."""
    on_hand = float(math.ceil(level))
    on_order = 0.0
    arrivals: dict[int, float] = defaultdict(float)
    sold = demanded = stock_sum = 0.0
    stockout_hours = orders = 0
    trace = []
    for h in range(start, h1):
        got = arrivals.pop(h, 0.0)
        on_hand += got
        on_order -= got
        position = on_hand + on_order
        if (h - start) % cycle == 0 and position < level:
            q = order_quantity(position, level, case_pack)
            arrivals[h + lead_steps] += q
            on_order += q
            orders += 1
        qty = y.get(h, 0.0)
        s = min(on_hand, qty)
        sold, demanded = sold + s, demanded + qty
        stockout_hours += qty > s
        on_hand -= s
        stock_sum += on_hand
        trace.append(on_hand)
    hours = max(h1 - start, 1)
    return ({"fill_rate": sold / demanded if demanded else 1.0, "stockout_hours": stockout_hours,
             "avg_stock": stock_sum / hours, "orders": orders, "sold": sold, "demanded": demanded}, trace)


def tuned_per_sku(run: SkuRun, y: dict[int, float], h0: int, start: int, h1: int, lead_steps: int,
                  cycle_hours: float, case_pack: int) -> dict[str, Any]:
    """An oracle: the flat level tuned for this SKU alone, in hindsight, to the policy's fill rate
    for this SKU (a bar no real store could set in advance; reported next to the fair one)."""
    cycle = max(1, round(cycle_hours))
    warm = max(start - h0, 1)
    base = max(_bucket_sum(y, h0, warm) / warm, 1e-6) * (lead_steps + cycle)
    target = run.policy["fill_rate"]
    lo, hi = 0.0, 1.0
    res, _ = _periodic(y, start, h1, lead_steps, cycle, hi * base, case_pack)
    while res["fill_rate"] < target and hi < 64:
        hi *= 2
        res, _ = _periodic(y, start, h1, lead_steps, cycle, hi * base, case_pack)
    for _ in range(12):
        mid = (lo + hi) / 2
        r, _ = _periodic(y, start, h1, lead_steps, cycle, mid * base, case_pack)
        if r["fill_rate"] >= target:
            hi, res = mid, r
        else:
            lo = mid
    return res


def baseline_runs(runs: list[SkuRun], series: dict[str, dict[int, float]], h0: int, start: int, h1: int,
                  lead_steps: int, cycle_hours: float, case_pack: int) -> float:
    """Fill each run's baseline: one level factor c for every SKU (as one z serves every SKU in
    the policy), the smallest whose overall fill rate reaches the policy's (bisection)."""
    cycle = max(1, round(cycle_hours))
    warm = max(start - h0, 1)
    bases = [max(_bucket_sum(series[r.key], h0, warm) / warm, 1e-6) * (lead_steps + cycle) for r in runs]
    target = sum(r.policy["sold"] for r in runs) / max(sum(r.policy["demanded"] for r in runs), 1e-9)

    def sim(c: float) -> tuple[float, list[tuple[dict[str, Any], list[float]]]]:
        res = [_periodic(series[r.key], start, h1, lead_steps, cycle, c * b, case_pack)
               for r, b in zip(runs, bases, strict=True)]
        fill = sum(x["sold"] for x, _ in res) / max(sum(x["demanded"] for x, _ in res), 1e-9)
        return fill, res

    lo, hi = 0.0, 1.0
    fill, best = sim(hi)
    while fill < target and hi < 64:
        hi *= 2
        fill, best = sim(hi)
    for _ in range(12):
        mid = (lo + hi) / 2
        f, res = sim(mid)
        if f >= target:
            hi, best = mid, res
        else:
            lo = mid
    for r, (res_, trace) in zip(runs, best, strict=True):
        r.baseline, r.stock_baseline = res_, trace
    return hi


def history_backtest(path: Path, settings: Settings, bucket: Bucket = "1h", warmup_days: float = 28.0,
                     min_per_day: float | None = None, top: int = 20, compare: bool = True,
                     case_pack: int | None = None, plots: Path | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    if bucket not in ("1h", "1d"):
        raise HistoryError(f"bucket must be 1h or 1d, not {bucket!r}")
    series, h0, h1 = load_hourly(Path(path))
    days = (h1 - h0) / 24
    start = h0 + int(warmup_days * 24)
    if start + 24 * 7 > h1:
        raise HistoryError(f"{path}: {days:.0f} days of history; the backtest needs the warm-up "
                           f"({warmup_days:g} days) plus at least a week")
    threshold = min_per_day if min_per_day is not None else (5.0 if bucket == "1h" else 1.0)
    volume = {k: sum(s.values()) for k, s in series.items()}
    eligible = sorted((k for k in series if volume[k] / days >= threshold), key=lambda k: (-volume[k], k))
    chosen = eligible[:top]
    if not chosen:
        raise HistoryError(f"no SKU sells {threshold:g} units a day on average (busiest: "
                           f"{max(volume.values()) / days:.2f}/day); lower --min-per-day or use --bucket 1d")
    pack = case_pack or settings.default_case_pack
    runs = [run_sku(k, series[k], h0, h1, start, bucket, settings, compare, pack) for k in chosen]
    lead_steps = max(1, math.ceil(settings.default_lead_time_hours))
    factor = baseline_runs(runs, series, h0, start, h1, lead_steps, settings.order_cycle_hours, pack)
    oracle = [tuned_per_sku(r, series[r.key], h0, start, h1, lead_steps, settings.order_cycle_hours, pack)
              for r in runs]
    actual = sum(r.actual for r in runs)

    def wape(err: float, act: float) -> float | None:
        return round(err / act, 4) if act else None

    naive_err = sum(r.naive for r in runs)
    forecast = {
        "model": settings.demand_model,
        "bucket": bucket,
        "skus": len(runs),
        "wape": wape(sum(r.err for r in runs), actual),
        "wape_mean": wape(sum(r.err_mean for r in runs), actual),
        # 1h only: the same hours, each forecast at the start of its day (midnight UTC), as a
        # store plans a day; seasonal naive is the same either way (a week back).
        "wape_day_ahead": wape(sum(r.err_day for r in runs), actual) if bucket == "1h" else None,
        "wape_day_ahead_mean": wape(sum(r.err_day_mean for r in runs), actual) if bucket == "1h" else None,
        "seasonal_naive_wape": wape(sum(r.naive for r in runs), actual),
        "ratio_to_naive": round(sum(r.err for r in runs) / sum(r.naive for r in runs), 4)
        if sum(r.naive for r in runs) else None,
        "ratio_to_naive_day_ahead": round(sum(r.err_day for r in runs) / naive_err, 4)
        if bucket == "1h" and naive_err else None,
        "threshold_units_per_day": threshold,
        "skus_eligible": len(eligible),
        "skus_in_file": len(series),
        "warmup_days": warmup_days,
        "scored_from": datetime.fromtimestamp(start * 3600, UTC).isoformat().replace("+00:00", "Z"),
        "scored_to": datetime.fromtimestamp(h1 * 3600, UTC).isoformat().replace("+00:00", "Z"),
        "models": {kind: wape(sum(r.models[kind] for r in runs), actual) for kind in (ALL_MODELS if compare else ())},
        "per_sku": {r.key: {"units": round(r.actual), "wape": wape(r.err, r.actual),
                            "wape_mean": wape(r.err_mean, r.actual),
                            "seasonal_naive_wape": wape(r.naive, r.actual)} for r in runs},
    }

    def agg(part: str) -> dict[str, Any]:
        rows = oracle if part == "oracle" else [getattr(r, part) for r in runs]
        demanded = sum(x["demanded"] for x in rows)
        return {"fill_rate": round(sum(x["sold"] for x in rows) / demanded, 4) if demanded else None,
                "stockout_hours": sum(x["stockout_hours"] for x in rows),
                "avg_stock": round(sum(x["avg_stock"] for x in rows) / len(rows), 2),
                "orders": sum(x["orders"] for x in rows)}

    reorder = {
        "policy": agg("policy"),
        "baseline": agg("baseline") | {
            "rule": "periodic order-up-to every order cycle, flat level c x mean hourly demand of the "
                    "warm-up x (lead time + cycle); one c for all SKUs, the smallest reaching the "
                    "policy's overall fill rate",
            "level_factor": round(factor, 3)},
        # Not a policy a store can run: each SKU's flat level tuned in hindsight to its own fill.
        "baseline_tuned_per_sku": agg("oracle"),
        "lead_time_hours": settings.default_lead_time_hours,
        "case_pack": pack,
        "service_level_z": settings.service_level_z,
        "order_cycle_hours": settings.order_cycle_hours,
        "per_sku": {r.key: {"policy_fill_rate": round(r.policy["fill_rate"], 4),
                            "policy_avg_stock": round(r.policy["avg_stock"], 2),
                            "baseline_fill_rate": round(r.baseline["fill_rate"], 4),
                            "baseline_avg_stock": round(r.baseline["avg_stock"], 2)} for r in runs},
    }
    out: dict[str, Any] = {"history": {"file": str(path), "days": round(days, 1), "from": _iso(h0),
                                       "to": _iso(h1)},
                           "forecast": forecast, "reorder": reorder}
    if plots is not None:
        out["plots"] = write_history_plots(Path(plots), runs[0], series[runs[0].key], start, h1, bucket)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _iso(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).isoformat().replace("+00:00", "Z")


def write_history_plots(out_dir: Path, run: SkuRun, y: dict[int, float], start: int, h1: int,
                        bucket: Bucket) -> list[str]:
    """Forecast vs actual (the last two weeks) and stock on hand over the whole replay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    step = 1 if bucket == "1h" else 24
    first = max(start, h1 - 14 * 24)
    first -= (first - start) % step
    starts = list(range(first, h1, step))
    when: Any = [datetime.fromtimestamp(h * 3600, UTC) for h in starts]
    actual = [_bucket_sum(y, h, step) for h in starts]
    pred = [run.forecasts.get(h, math.nan) for h in starts]
    naive = [_bucket_sum(y, h - WEEK_HOURS, step) for h in starts]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.step(when, actual, where="post", label="actual sales", alpha=0.8)
    ax.step(when, pred, where="post", label="forecast (rolling origin)")
    ax.step(when, naive, where="post", label="seasonal naive (a week earlier)", alpha=0.5, linestyle=":")
    ax.set_title(f"{run.key}: {'hourly' if step == 1 else 'daily'} sales vs forecast, last two weeks")
    ax.set_ylabel("units / " + ("hour" if step == 1 else "day"))
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    f1 = out_dir / "history-forecast.png"
    fig.savefig(f1, dpi=90)
    plt.close(fig)

    hours: Any = [datetime.fromtimestamp(h * 3600, UTC) for h in range(start, h1)]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(hours, run.stock_policy, label=f"Backroom policy (fill {run.policy['fill_rate']:.1%})", lw=0.8)
    ax.plot(hours, run.stock_baseline, label=f"baseline (fill {run.baseline['fill_rate']:.1%})", lw=0.8,
            alpha=0.7)
    ax.set_title(f"{run.key}: stock on hand, real demand replayed")
    ax.set_ylabel("units on hand")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    f2 = out_dir / "history-stock.png"
    fig.savefig(f2, dpi=90)
    plt.close(fig)
    return [str(f1), str(f2)]
