"""Core verbs: broker, topics, worker, simulate, alerts, dashboard, demo.

backroom demo                   # everything on the embedded broker; prints the dashboard URL
backroom broker start|stop|status
backroom worker                 # the Faust worker (connects to a running broker)
backroom simulate --stores 3 --skus 20 --speed 600
backroom alerts --follow
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from backroom.settings import Settings, get_settings

broker_app = typer.Typer(
    help="The embedded Apache Kafka broker (KRaft, single node).", no_args_is_help=True
)


def require_broker(settings: Settings) -> None:
    """Exit with a clear message when no broker answers (every verb but demo/broker)."""
    from broker.embedded import broker_answers

    if not broker_answers(settings.bootstrap):
        hint = (
            "start one with `backroom broker start` (or run `backroom demo`)"
            if settings.embedded
            else "check BACKROOM_KAFKA_BOOTSTRAP"
        )
        typer.secho(f"No Kafka broker answers on {settings.bootstrap}: {hint}.", fg="red", err=True)
        raise typer.Exit(2)


@broker_app.command("start")
def broker_start(
    foreground: bool = typer.Option(False, "--foreground", help="stay attached; Ctrl-C stops it"),
) -> None:
    """Resolve the jars (first run), format the data dir, start the broker, wait until it answers."""
    from broker.embedded import BrokerError, EmbeddedBroker

    settings = get_settings()
    if not settings.embedded:
        typer.secho(
            f"BACKROOM_KAFKA_BOOTSTRAP is set ({settings.bootstrap}): nothing to start.", err=True
        )
        raise typer.Exit(1)
    broker = EmbeddedBroker(settings)
    try:
        address = broker.start(detach=not foreground)
    except BrokerError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"broker ready on {address} (data in {broker.home})")
    if foreground:
        try:
            assert broker.process is not None
            broker.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            broker.stop()


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the embedded broker started by `backroom broker start`."""
    from broker.embedded import EmbeddedBroker

    stopped = EmbeddedBroker(get_settings()).stop()
    typer.echo("broker stopped" if stopped else "no embedded broker was running")


@broker_app.command("status")
def broker_status() -> None:
    """Exit 0 and print the bootstrap address only when a broker answers."""
    from broker.embedded import broker_answers

    settings = get_settings()
    if broker_answers(settings.bootstrap):
        typer.echo(settings.bootstrap)
        return
    typer.secho(f"no broker answers on {settings.bootstrap}", fg="red", err=True)
    raise typer.Exit(1)


def topics() -> None:
    """Create the contract topics that are missing (idempotent)."""
    from streams.topics import ensure_topics

    settings = get_settings()
    require_broker(settings)
    created = asyncio.run(ensure_topics(settings))
    typer.echo(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))


def worker(loglevel: str = typer.Option("warning", help="faust log level")) -> None:
    """Run the Faust worker: inventory, alerts and catalog agents (add more for scale-out)."""
    from faust import Worker

    from streams.app import create_app
    from streams.runtime import settle_heap, young_collections_less_often
    from streams.topics import ensure_topics

    settings = get_settings()
    require_broker(settings)
    asyncio.run(ensure_topics(settings))
    app = create_app(settings)
    from backroom.logs import worker_logging_config

    runner = Worker(app, loglevel=loglevel, quiet=True,
                    logging_config=worker_logging_config(settings, loglevel))  # fmt: skip
    # Faust's start-up spinner sets the root logger to DEBUG for as long as the worker runs, so
    # every aiokafka/faust debug record is built and handled: ~10 % of the worker's CPU under load.
    runner.spinner = None
    settle_heap()  # the imports' objects, before the first event (streams/runtime.py)
    young_collections_less_often()
    runner.execute_from_commandline()


def simulate(
    stores: int = typer.Option(3, help="number of stores"),
    skus: int = typer.Option(20, help="SKUs per store"),
    days: float = typer.Option(7.0, help="event-time days to simulate"),
    speed: float = typer.Option(600.0, help="event-time seconds per wall second; 0 = no waiting"),
    seed: int = typer.Option(7),
    start: str = typer.Option(
        "2026-11-23T06:00:00+00:00", help="event-time start (ISO, with zone)"
    ),
    truth: Path | None = typer.Option(
        None, help="write the true quantities over time (JSON lines)"
    ),
    staff: str = typer.Option("scheduled", help="scheduled | alert-driven"),
    camera_every: float = typer.Option(
        0.0, help="event-time minutes between camera frames; 0 = no cameras"
    ),
    cameras_per_store: int = typer.Option(1, help="shelf cameras per store"),
) -> None:
    """Simulate stores: catalog, Poisson sales, deliveries, restocking, shrink, miscounts, cameras."""
    from producers.simulator import run_simulator

    settings = get_settings()
    require_broker(settings)
    asyncio.run(
        run_simulator(settings, stores=stores, skus=skus, days=days, speed=speed, seed=seed,
                      start=start, truth_path=truth, staff=staff, camera_every_min=camera_every,
                      cameras_per_store=cameras_per_store)
    )  # fmt: skip


def alerts(
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new alerts"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Print alerts from the `alerts` topic (from the beginning; --follow keeps going)."""
    from consumers.alert_tail import tail_alerts

    settings = get_settings()
    require_broker(settings)
    try:
        asyncio.run(tail_alerts(settings, follow=follow, as_json=as_json))
    except KeyboardInterrupt:
        pass


def dashboard() -> None:
    """Serve the live dashboard on BACKROOM_DASHBOARD_HOST:PORT."""
    from dashboard.server import serve

    settings = get_settings()
    require_broker(settings)
    serve(settings)


def demo(
    stores: int = typer.Option(4, help="number of stores"),
    skus: int = typer.Option(24, help="SKUs per store"),
    speed: float = typer.Option(900.0, help="event-time seconds per wall second"),
    seed: int = typer.Option(7),
    cameras: bool = typer.Option(
        True, help="simulated shelf cameras (needs models/shelf-gap.onnx)"
    ),
) -> None:
    """Everything in one command: broker (when none answers), topics, worker, simulator, dashboard."""
    from producers.demo import run_demo

    sys.exit(
        run_demo(get_settings(), stores=stores, skus=skus, speed=speed, seed=seed, cameras=cameras)
    )


def register(app: typer.Typer) -> None:
    app.add_typer(broker_app, name="broker")
    app.command()(topics)
    app.command()(worker)
    app.command()(simulate)
    app.command()(alerts)
    app.command()(dashboard)
    app.command()(demo)
