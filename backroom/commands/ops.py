"""Operations verbs: `backroom bench dashboard --json`.

    backroom bench dashboard --clients 200 --rate 1000 --seconds 10 --json

Registered into the `bench` group when another area created it (backroom/commands/bench.py),
otherwise as its own `bench` group; the measurement itself is `dashboard.bench.bench_dashboard`.
"""

from __future__ import annotations

import json

import typer


def bench_dashboard_command(
    clients: int = typer.Option(200, help="concurrent websocket clients"),
    rate: float = typer.Option(1000.0, help="inventory.state updates per second fed to the view"),
    seconds: float = typer.Option(10.0, help="length of the measured phase"),
    stores: int = typer.Option(20, help="stores in the synthetic feed"),
    skus: int = typer.Option(100, help="SKUs per store in the synthetic feed"),
    flush_ms: int = typer.Option(100, help="coalescing interval of the websocket hub"),
    baseline: bool = typer.Option(True, help="run a 1-client baseline at the same rate first"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on one line"),
) -> None:
    """Websocket fan-out: N clients, a fixed update rate, p50/p99 delivery latency, drops.

    The updates are fed in-process into the dashboard's live view (no Kafka): this measures the
    dashboard alone; `backroom bench pipeline` measures the Kafka leg.
    """
    from dashboard.bench import bench_dashboard

    result = bench_dashboard(clients, rate, seconds, stores=stores, skus=skus, flush_ms=flush_ms,
                             baseline=baseline)  # fmt: skip
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


def _bench_group(app: typer.Typer) -> typer.Typer | None:
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            return group.typer_instance
    return None


def register(app: typer.Typer) -> None:
    group = _bench_group(app)
    if group is None:
        group = typer.Typer(
            help="Benchmarks: one JSON object each with --json.", no_args_is_help=True
        )
        app.add_typer(group, name="bench")
    if not any(cmd.name == "dashboard" for cmd in group.registered_commands):
        group.command("dashboard")(bench_dashboard_command)
