"""`backroom backtest --history` on a small generated sales history (fields, sane scores).

    pytest tests/unit/test_history_backtest.py
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backroom.demand.history_backtest import HistoryError, history_backtest
from backroom.settings import Settings

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def write_history(path: Path, days: int = 42, seed: int = 3) -> Path:
    """A shop open 8-18 h, busier at noon and on Saturdays; two SKUs and a slow one."""
    rng = random.Random(seed)
    lines = ["event_id,ts,store_id,sku,qty,unit_price,register_id"]
    n = 0
    for h in range(days * 24):
        when = START + timedelta(hours=h)
        if not 8 <= when.hour < 18:
            continue
        shape = 1.0 + math.sin((when.hour - 8) / 10 * math.pi)
        week = 1.6 if when.weekday() == 5 else 1.0
        for sku, rate in (("COFFEE", 3.0), ("BREAD", 1.5), ("JAM", 0.05)):
            # Poisson by inversion: small means, no numpy needed
            mean, k, p = rate * shape * week, 0, rng.random()
            term = cum = math.exp(-mean)
            while p > cum:
                k += 1
                term *= mean / k
                cum += term
            for _ in range(k):
                n += 1
                ts = when + timedelta(minutes=rng.randrange(60))
                lines.append(f"s{n},{ts.strftime('%Y-%m-%dT%H:%M:%SZ')},S1,{sku},1,,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = write_history(tmp_path_factory.mktemp("hist") / "sales.csv")
    settings = Settings(_env_file=None, default_case_pack=1)  # type: ignore[call-arg]
    return history_backtest(path, settings, warmup_days=21, compare=False)


def test_fields_and_threshold(result: dict[str, Any]) -> None:
    f = result["forecast"]
    assert {"model", "bucket", "skus", "wape", "seasonal_naive_wape"} <= set(f)
    assert f["bucket"] == "1h" and f["threshold_units_per_day"] == 5.0
    assert f["skus"] == 2 and f["skus_in_file"] == 3  # JAM sells ~1 a day: below the threshold
    assert set(f["per_sku"]) == {"S1:COFFEE", "S1:BREAD"}
    for part in ("policy", "baseline", "baseline_tuned_per_sku"):
        assert set(result["reorder"][part]) >= {"fill_rate", "stockout_hours", "avg_stock", "orders"}


def test_wape_is_sane_and_beats_seasonal_naive(result: dict[str, Any]) -> None:
    f = result["forecast"]
    # Poisson counts of a few units an hour: the best forecast still errs by ~0.4-0.6 of sales
    assert 0.2 < f["wape"] < f["seasonal_naive_wape"] < 1.5
    # The point forecast (a Poisson median) is what absolute error rewards; the mean pays more.
    assert f["wape"] < f["wape_mean"] < f["seasonal_naive_wape"]
    assert all(s["wape"] <= s["wape_mean"] for s in f["per_sku"].values())
    # Forecast at midnight for the whole day: still better than naive; on this stationary
    # series the later information barely matters either way.
    assert f["wape_day_ahead"] < f["seasonal_naive_wape"]
    assert abs(f["wape_day_ahead"] - f["wape"]) < 0.05 and f["wape_day_ahead_mean"] > f["wape_day_ahead"]
    assert f["ratio_to_naive_day_ahead"] == pytest.approx(f["wape_day_ahead"] / f["seasonal_naive_wape"], abs=2e-3)


def test_one_wholesale_line_does_not_set_the_stock_for_months(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, default_case_pack=1)  # type: ignore[call-arg]
    calm = write_history(tmp_path / "calm.csv", days=42)
    text = calm.read_text(encoding="utf-8")
    # One invoice line of 80,000 units on day 25 (after the 21-day warm-up): counted as a sale.
    (tmp_path / "hit.csv").write_text(text + "w1,2026-01-30T11:20:00Z,S1,COFFEE,80000,,\n", encoding="utf-8")
    a = history_backtest(calm, settings, bucket="1d", warmup_days=21, compare=False, top=1)
    b = history_backtest(tmp_path / "hit.csv", settings, bucket="1d", warmup_days=21, compare=False, top=1)
    assert b["reorder"]["policy"]["avg_stock"] < 3 * a["reorder"]["policy"]["avg_stock"]
    assert b["forecast"]["per_sku"]["S1:COFFEE"]["units"] > a["forecast"]["per_sku"]["S1:COFFEE"]["units"] + 79_000


def test_reorder_replay_keeps_shelves_stocked(result: dict[str, Any]) -> None:
    p, b = result["reorder"]["policy"], result["reorder"]["baseline"]
    assert 0.9 <= p["fill_rate"] <= 1.0 and p["orders"] > 0 and p["avg_stock"] > 0
    assert b["fill_rate"] >= p["fill_rate"] - 1e-9  # the baseline is tuned to the same fill rate
    oracle = result["reorder"]["baseline_tuned_per_sku"]
    assert oracle["fill_rate"] >= p["fill_rate"] - 0.01 and oracle["avg_stock"] <= b["avg_stock"] + 1e-9


def test_daily_bucket_and_errors(tmp_path: Path) -> None:
    path = write_history(tmp_path / "s.csv", days=35)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    out = history_backtest(path, settings, bucket="1d", warmup_days=21, compare=False, top=1)
    assert out["forecast"]["bucket"] == "1d" and out["forecast"]["skus"] == 1
    assert 0 < out["forecast"]["wape"] < 1.0
    with pytest.raises(HistoryError, match="at least a week"):
        history_backtest(path, settings, warmup_days=30)
    with pytest.raises(HistoryError, match="no SKU sells"):
        history_backtest(path, settings, warmup_days=21, min_per_day=1000)


def test_cli_history_json_and_plots(tmp_path: Path) -> None:
    from cli.main import app

    path = write_history(tmp_path / "s.csv", days=30)
    res = CliRunner().invoke(app, ["backtest", "--history", str(path), "--history-warmup-days", "21",
                                   "--no-compare", "--top", "1", "--plots", str(tmp_path / "img")])
    assert res.exit_code == 0, res.output
    assert "seasonal naive" in res.output and "reorder policy" in res.output
    assert (tmp_path / "img" / "history-forecast.png").stat().st_size > 1000
    assert (tmp_path / "img" / "history-stock.png").stat().st_size > 1000


def test_week_profile_knows_weekdays_and_closed_hours() -> None:
    from backroom.demand.forecast import Forecaster, weekday_of

    f = Forecaster("weekprofile")
    h0 = int(START.timestamp() // 3600)
    for h in range(h0, h0 + 24 * 7 * 4):
        hour, day = h % 24, weekday_of(h)
        qty = 0.0 if not 8 <= hour < 18 else (6.0 if day == 5 else 2.0)  # Saturdays triple
        f.learn(h, qty)
    nxt = f.forecast(24 * 7)  # the next week, from a Monday 00:00
    assert max(nxt[:8]) == 0.0 and max(nxt[18:24]) == 0.0  # closed at night
    sat_noon, tue_noon = nxt[5 * 24 + 12], nxt[1 * 24 + 12]
    assert sat_noon == pytest.approx(6.0, rel=0.15) and tue_noon == pytest.approx(2.0, rel=0.15)
