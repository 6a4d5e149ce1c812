"""Backtest plots (PNG, matplotlib Agg): forecast vs actual with the band, and OSA per day.

    backroom backtest --days 14 --plots docs/img     # writes demand-forecast.png, demand-osa.png
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_plots(out_dir: Path, run: Any, truth: Any, start: datetime, end: datetime,
                daily_alert: list[tuple[str, float]], daily_sched: list[tuple[str, float]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    # The busiest SKU: its series shows the daily shape best.
    volume: dict[str, float] = {}
    for (key, _), qty in run.sales.items():
        volume[key] = volume.get(key, 0.0) + qty
    key = max(sorted(volume), key=lambda k: volume[k])
    h1 = int(end.timestamp() // 3600)
    h0 = max(int(start.timestamp() // 3600), h1 - 24 * 5)
    hours = list(range(h0, h1))
    when: Any = [datetime.fromtimestamp(h * 3600, UTC) for h in hours]  # matplotlib takes datetimes
    actual = [truth.demand(key, h) for h in hours]
    pred = [run.forecasts.get((key, h), (math.nan, 0.0)) for h in hours]
    mean = [p[0] for p in pred]
    sd = [math.sqrt(p[1] * p[0]) if p[0] == p[0] and p[0] > 0 else 0.0 for p in pred]
    lo = [max(0.0, m - 1.64 * s) for m, s in zip(mean, sd, strict=True)]
    hi = [m + 1.64 * s for m, s in zip(mean, sd, strict=True)]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.fill_between(when, lo, hi, step="mid", alpha=0.25, label="90% band")
    ax.step(when, mean, where="mid", label="forecast (next hour)")
    ax.step(when, actual, where="mid", alpha=0.7, label="true demand (sales + lost)")
    ax.set_title(f"{key}: hourly demand, last {len(hours) // 24} days of the backtest")
    ax.set_ylabel("units / hour")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    f1 = out_dir / "demand-forecast.png"
    fig.savefig(f1, dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([d for d, _ in daily_alert], [100 * v for _, v in daily_alert], marker="o", label="alert-driven")
    ax.plot([d for d, _ in daily_sched], [100 * v for _, v in daily_sched], marker="s",
            label="scheduled (same moves)")
    ax.axhline(99, color="grey", linestyle=":", label="99% target")
    ax.set_ylabel("on-shelf availability %")
    ax.set_title("OSA per day (demand-weighted)")
    ax.legend(loc="lower left")
    fig.autofmt_xdate()
    fig.tight_layout()
    f2 = out_dir / "demand-osa.png"
    fig.savefig(f2, dpi=90)
    plt.close(fig)
    return [str(f1), str(f2)]
