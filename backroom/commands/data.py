"""Data verbs: clean, replay, history, ask, ingest.

    backroom clean data/raw/sales.csv [--out DIR] [--format csv] [--tz Europe/Berlin] [--json]
    backroom replay data/processed/products.parquet data/processed/sales.parquet --speed 3600
    backroom history [--once]          # DuckDB sink of every topic
    backroom ask "What do I need to restock today?" [--json] [--store S001]
    backroom ingest                    # HTTP ingest on 127.0.0.1:<dashboard_port + 1>, docs at /docs

Each verb parses options, calls a plain function (backroom.cleaning, producers.replay,
consumers.duckdb_sink, backroom.ask, producers.ingest_api) and prints its result.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from backroom.settings import get_settings


def clean(
    raw: Path = typer.Argument(..., help="raw CSV export (sales, scans or products)", exists=False),
    out: Path = typer.Option(
        None, "--out", "-o", help="output folder; default <data_dir>/processed"
    ),
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet or csv"),
    kind: str = typer.Option(
        None, "--kind", help="sales, scans or catalog; default: from the headers"
    ),
    tz: str = typer.Option("UTC", "--tz", help="IANA zone of timestamps without an offset"),
    date_order: str = typer.Option(
        "auto", "--date-order", help="auto, dmy or mdy for 01/02/2026 dates"
    ),
    double_scan_s: float = typer.Option(
        10.0, "--double-scan-s", help="same scan within N s is a double scan"
    ),
    catalog: Path = typer.Option(
        None, "--catalog", help="processed catalog (for case packs of '2 cs')"
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="utf-8, utf-16 or latin-1"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Validate, normalise and deduplicate a raw POS/ERP CSV into contract-shaped Parquet/CSV."""
    from backroom.cleaning import CleaningError
    from backroom.cleaning import clean as run_clean

    settings = get_settings()
    try:
        summary = run_clean(
            raw, out or settings.data_dir / "processed", fmt,  # type: ignore[arg-type]
            kind=kind, tz=tz, date_order=date_order, double_scan_s=double_scan_s,  # type: ignore[arg-type]
            catalog=catalog, encoding=encoding,
        )  # fmt: skip
    except CleaningError as exc:
        typer.secho(f"clean: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"{summary.input} ({summary.kind})", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for label, value in (
        ("rows in", summary.rows_in),
        ("rows out", summary.rows_out),
        ("rejected", summary.rows_rejected),
        ("event time", f"{summary.ts_min} .. {summary.ts_max}" if summary.ts_min else "-"),
        ("stores / SKUs", f"{summary.stores} / {summary.skus}"),
        ("naive times in", f"{summary.tz} (slash dates {summary.date_order})"),
        ("took", f"{summary.seconds:.2f} s ({summary.rows_per_minute:,.0f} rows/min)"),
        *((f"  {code}", n) for code, n in summary.rejects_by_code.items()),
        *((name, path) for name, path in summary.outputs.items()),
    ):
        t.add_row(str(label), str(value))
    console.print(t)


def replay(
    files: list[Path] = typer.Argument(..., help="processed files from `backroom clean`"),
    speed: float = typer.Option(
        0.0, "--speed", help="event-time seconds per wall second; 0 = flat out"
    ),
) -> None:
    """Produce processed history into the contract topics in event-time order."""
    from backroom.commands.core import require_broker
    from producers.replay import TOPIC, ReplayError
    from producers.replay import replay as run_replay
    from streams.topics import ensure_topics

    settings = get_settings()
    require_broker(settings)
    try:
        asyncio.run(ensure_topics(settings, tuple(TOPIC.values()), changelogs=False))
        stats = asyncio.run(run_replay(files, settings, speed))
    except ReplayError as exc:
        typer.secho(f"replay: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    for topic, n in stats.produced.items():
        typer.echo(f"{settings.topic(topic)}: {n}")
    typer.echo(
        f"{stats.total} events ({stats.first_ts} .. {stats.last_ts}) in {stats.seconds:.1f} s"
        + (f", {stats.skipped} invalid rows skipped" if stats.skipped else "")
    )


def history(
    once: bool = typer.Option(False, "--once", help="catch up with every topic, then exit"),
    group: str = typer.Option(None, "--group", help="consumer group; default <app_id>-history"),
) -> None:
    """Write every topic into the DuckDB history file (idempotent; safe to run again)."""
    from backroom.commands.core import require_broker
    from backroom.history import HistoryStore, history_path
    from consumers.duckdb_sink import run_sink
    from streams.topics import CONTRACT_TOPICS, ensure_topics

    settings = get_settings()
    require_broker(settings)
    # Subscribing to a topic that does not exist yet would skip it until the next rebalance.
    asyncio.run(ensure_topics(settings, CONTRACT_TOPICS, changelogs=False))
    path = history_path(settings)
    store = HistoryStore(path)
    typer.echo(f"history -> {path}" + (" (until caught up)" if once else " (Ctrl-C stops)"))

    def progress(stats: Any) -> None:
        if not once:
            typer.echo(f"batch {stats.batches}: +{stats.inserted} rows ({stats.consumed} consumed)")

    try:
        stats = asyncio.run(run_sink(settings, store, once=once, group_id=group, on_batch=progress))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    typer.echo(
        f"consumed {stats.consumed}, inserted {stats.inserted}, invalid {stats.invalid}, "
        f"undecodable {stats.undecodable}"
    )
    for table, n in store.counts().items():
        typer.echo(f"  {table}: {n}")


def ask(
    question: str = typer.Argument(..., help='e.g. "What do I need to restock today?"'),
    as_json: bool = typer.Option(False, "--json", help="print the Answer as JSON"),
    store_id: str = typer.Option(None, "--store", help="limit to one store"),
    no_llm: bool = typer.Option(False, "--no-llm", help="never call the configured LLM endpoint"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
) -> None:
    """Answer a question from the DuckDB history; shows the rows and the SQL it ran."""
    from backroom.ask import ask as run_ask
    from backroom.history import HistoryStore, history_path

    settings = get_settings()
    answer = run_ask(
        question, HistoryStore(history_path(settings)), settings,
        limit=limit, store_id=store_id, use_llm=False if no_llm else None,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), indent=2))
    else:
        from rich.console import Console
        from rich.syntax import Syntax
        from rich.table import Table

        console = Console()
        console.print(f"[bold]{answer.intent}[/] {json.dumps(answer.slots)}")
        console.print(answer.text)
        if answer.rows:
            t = Table(*answer.columns)
            for row in answer.rows:
                t.add_row(*("" if v is None else str(v) for v in row))
            console.print(t)
        if answer.sql:
            console.print(Syntax(answer.sql, "sql", word_wrap=True))
            if answer.params:
                console.print(f"params: {json.dumps(answer.params)}")
        for note in answer.notes:
            console.print(f"[dim]{note}[/]")
    if answer.intent in ("refused", "busy", "timeout"):
        raise typer.Exit(2)


def ingest(
    host: str = typer.Option(None, "--host", help="default: settings.dashboard_host"),
    port: int = typer.Option(None, "--port", help="default: settings.dashboard_port + 1"),
) -> None:
    """Serve the POS/ERP HTTP ingest API (OpenAPI docs at /docs)."""
    import uvicorn

    from backroom.commands.core import require_broker
    from producers.ingest_api import create_ingest_app

    settings = get_settings()
    require_broker(settings)
    host = host or settings.dashboard_host
    port = port or settings.dashboard_port + 1
    typer.echo(f"ingest API on http://{host}:{port} (docs at /docs)")
    uvicorn.run(create_ingest_app(settings), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command()(clean)
    app.command()(replay)
    app.command()(history)
    app.command()(ask)
    app.command()(ingest)
