"""Demand verbs: `backroom backtest`.

backroom backtest --days 14 --stores 3 --skus 20 --seed 7 --json --plots docs/img
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from backroom.settings import get_settings


def backtest(
    days: float = typer.Option(14.0, help="event-time days to simulate (warm-up included)"),
    stores: int = typer.Option(3),
    skus: int = typer.Option(20, help="SKUs per store"),
    seed: int = typer.Option(7),
    warmup_days: float = typer.Option(
        3.0, help="days of the store's own routine while models learn"
    ),
    reaction_minutes: float = typer.Option(45.0, help="simulated staff: alert to shelf"),
    camera_minutes: float = typer.Option(
        0.0, help="a shelf camera's view of every SKU this often in open hours (0: no camera)"
    ),
    model: str = typer.Option(None, help="demand model (default: BACKROOM_DEMAND_MODEL)"),
    compare: bool = typer.Option(True, help="also score every River model on the same series"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    plots: Path | None = typer.Option(None, help="write PNG plots into this directory"),
) -> None:
    """Simulator + the worker's processing, faster than real time, scored against the truth."""
    from backroom.demand.backtest import backtest as run

    settings = get_settings()
    if model:
        settings = settings.model_copy(update={"demand_model": model})
    result = run(days=days, stores=stores, skus=skus, seed=seed, warmup_days=warmup_days,
                 reaction_minutes=reaction_minutes, settings=settings, compare=compare, plots=plots,
                 camera_minutes=camera_minutes or None)  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result))
        return
    f, a, o, m = result["forecast"], result["alerts"], result["osa"], result["moves"]
    typer.echo(
        f"forecast {f['model']}: WAPE {f['wape']} vs seasonal naive {f['seasonal_naive_wape']}"
    )
    for name, s in result["models"].items():
        typer.echo(
            f"  {name:12s} WAPE {s['wape']}  {s['bytes_per_model']} B/model  {s['us_per_hour_step']} µs/step"
        )
    typer.echo(f"alerts: recall {a['recall']} precision {a['precision']} median lead {a['median_lead_hours']} h "
               f"({a['episodes']} shelf-out episodes)")  # fmt: skip
    typer.echo(f"OSA alert-driven {o['alert_driven']} vs scheduled {o['scheduled']} at moves {m}")
    st = result["stock_on_hand"]
    typer.echo(f"stock on hand: {st['alert_driven']['days_of_cover']} days of cover alert-driven, "
               f"{st['scheduled']['days_of_cover']} scheduled")  # fmt: skip
    typer.echo(f"{result['seconds']} s")


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
