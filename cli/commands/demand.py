"""Demand verbs: `backroom backtest`.

    backroom backtest --days 14 --stores 3 --skus 20 --seed 7 --json --plots docs/img
    backroom backtest --history data/processed/sales.parquet [--bucket 1d] [--json] [--plots DIR]
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from backroom.settings import Settings, get_settings


def backtest(
    days: float = typer.Option(14.0, help="event-time days to simulate (warm-up included)"),
    stores: int = typer.Option(3),
    skus: int = typer.Option(20, help="SKUs per store"),
    seed: int = typer.Option(7),
    warmup_days: float = typer.Option(3.0, help="days of the store's own routine while models learn"),
    reaction_minutes: float = typer.Option(45.0, help="simulated staff: alert to shelf"),
    camera_minutes: float = typer.Option(
        0.0, help="a shelf camera's view of every SKU this often in open hours (0: no camera)"
    ),
    model: str = typer.Option(None, help="demand model (default: BACKROOM_DEMAND_MODEL)"),
    compare: bool = typer.Option(True, help="also score every River model on the same series"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    plots: Path | None = typer.Option(None, help="write PNG plots into this directory"),
    history: Path | None = typer.Option(
        None, "--history", help="a processed sales file from `backroom clean`: backtest on it, not the simulator"
    ),
    bucket: str = typer.Option("1h", "--bucket", help="--history: score per hour (1h) or per day (1d)"),
    min_per_day: float = typer.Option(
        None, "--min-per-day", help="--history: SKUs selling at least this many units a day (default 5 for 1h, 1 for 1d)"
    ),
    top: int = typer.Option(20, "--top", min=1, help="--history: at most this many of the busiest SKUs"),
    history_warmup: float = typer.Option(28.0, "--history-warmup-days", help="--history: days that only teach"),
    case_pack: int = typer.Option(None, "--case-pack", min=1, help="--history: default BACKROOM_DEFAULT_CASE_PACK"),
) -> None:
    """Simulator + the worker's processing, faster than real time, scored against the truth;
    or, with --history, the demand model and reorder policy on a store's own sales."""
    from backroom.demand.backtest import backtest as run

    settings = get_settings()
    if model:
        settings = settings.model_copy(update={"demand_model": model})
    if history is not None:
        _history(history, settings, bucket, history_warmup, min_per_day, top, compare, case_pack, plots, as_json)
        return
    result = run(days=days, stores=stores, skus=skus, seed=seed, warmup_days=warmup_days,
                 reaction_minutes=reaction_minutes, settings=settings, compare=compare, plots=plots,
                 camera_minutes=camera_minutes or None)
    if as_json:
        typer.echo(json.dumps(result))
        return
    f, a, o, m = result["forecast"], result["alerts"], result["osa"], result["moves"]
    typer.echo(f"forecast {f['model']}: WAPE {f['wape']} vs seasonal naive {f['seasonal_naive_wape']}")
    for name, s in result["models"].items():
        typer.echo(f"  {name:12s} WAPE {s['wape']}  {s['bytes_per_model']} B/model  {s['us_per_hour_step']} µs/step")
    typer.echo(f"alerts: recall {a['recall']} precision {a['precision']} median lead {a['median_lead_hours']} h "
               f"({a['episodes']} shelf-out episodes)")
    typer.echo(f"OSA alert-driven {o['alert_driven']} vs scheduled {o['scheduled']} at moves {m}")
    st = result["stock_on_hand"]
    typer.echo(f"stock on hand: {st['alert_driven']['days_of_cover']} days of cover alert-driven, "
               f"{st['scheduled']['days_of_cover']} scheduled")
    typer.echo(f"{result['seconds']} s")


def _history(path: Path, settings: Settings, bucket: str, warmup: float, min_per_day: float | None,
             top: int, compare: bool, case_pack: int | None, plots: Path | None, as_json: bool) -> None:
    from backroom.demand.history_backtest import HistoryError, history_backtest

    try:
        result = history_backtest(path, settings, bucket, warmup, min_per_day, top, compare,  # type: ignore[arg-type]
                                  case_pack, plots)
    except HistoryError as exc:
        typer.secho(f"backtest: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result))
        return
    f, r = result["forecast"], result["reorder"]
    typer.echo(f"history {result['history']['from']} .. {result['history']['to']} ({result['history']['days']} days); "
               f"scored from {f['scored_from']}")
    typer.echo(f"forecast {f['model']} per {f['bucket']}: WAPE {f['wape']} (mean forecast {f['wape_mean']}) "
               f"vs seasonal naive {f['seasonal_naive_wape']} (x{f['ratio_to_naive']}) on {f['skus']} SKUs selling >= "
               f"{f['threshold_units_per_day']:g} units/day ({f['skus_eligible']} eligible of {f['skus_in_file']})")
    for name, w in f["models"].items():
        typer.echo(f"  {name:16s} WAPE {w}")
    for key, s in f["per_sku"].items():
        typer.echo(f"  {key:32s} {s['units']:>7} units  WAPE {s['wape']}  naive {s['seasonal_naive_wape']}")
    for name in ("policy", "baseline", "baseline_tuned_per_sku"):
        p = r[name]
        typer.echo(f"reorder {name:22s}: fill rate {p['fill_rate']}, stock-out hours {p['stockout_hours']}, "
                   f"avg stock {p['avg_stock']} units/SKU, orders {p['orders']}")
    typer.echo(f"  lead time {r['lead_time_hours']} h, case pack {r['case_pack']}, z {r['service_level_z']}")
    for p in result.get("plots", []):
        typer.echo(f"plot: {p}")
    typer.echo(f"{result['seconds']} s")


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
