"""`backroom bench ...`: measurements as one JSON object (fields documented in docs/contract.md).

backroom bench pipeline --events 200000 --rate 2000 --json
backroom bench scale --keys 1000000 --store rocksdb:// --json
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from backroom.settings import Settings, get_settings

bench_app = typer.Typer(help="Benchmarks: one JSON object each with --json.", no_args_is_help=True)


def _broker_settings() -> Settings:
    """The settings, once a broker answers (the broker benchmarks need one running)."""
    from cli.commands.core import require_broker

    settings = get_settings()
    require_broker(settings)
    return settings


def _emit(result: dict[str, Any], as_json: bool) -> None:
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@bench_app.command("pipeline")
def pipeline(
    events: int = typer.Option(200_000, help="POS events to pre-load"),
    keys: int = typer.Option(200, help="distinct store×SKU keys"),
    rate: float = typer.Option(2000.0, help="events/s for the latency phase"),
    seconds: float = typer.Option(20.0, help="length of the scored latency phase"),
    warmup: float = typer.Option(5.0, help="seconds produced at the rate before latency is scored"),
    keep_topics: bool = typer.Option(False, help="leave the run's topics on the broker"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Worker events/s vs raw aiokafka consume in the same run; produce→state latency."""
    from bench.pipeline import BenchConfig, bench_pipeline

    settings = _broker_settings()
    result = asyncio.run(
        bench_pipeline(settings, BenchConfig(events, keys, rate, seconds, warmup, keep_topics))
    )
    _emit(result, as_json)


@bench_app.command("soak")
def soak(
    minutes: float = typer.Option(30.0, help="length of the paced phase"),
    rate: float = typer.Option(5000.0, help="events/s produced (sales and scans)"),
    keys: int = typer.Option(100_000, help="store×SKU keys in the worker's tables"),
    stores: int = typer.Option(50, help="stores the keys are spread over"),
    sample_s: float = typer.Option(5.0, help="seconds between RSS and lag samples"),
    fill: int = typer.Option(
        64, help="pre-load events per key (count + sales) before the paced phase; 1 = one count"
    ),
    keep_topics: bool = typer.Option(False, help="leave the run's topics on the broker"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Sustained load: consumer lag and worker RSS over time, then catch-up after a restart."""
    from bench.soak import SoakConfig, bench_soak

    settings = _broker_settings()
    result = asyncio.run(
        bench_soak(
            settings,
            SoakConfig(minutes, rate, keys, stores, sample_s, fill=fill, keep_topics=keep_topics),
        )
    )
    _emit(result, as_json)


@bench_app.command("vision")
def vision(
    threads: int = typer.Option(0, help="ONNX Runtime intra-op threads; 0 = all cores"),
    seconds: float = typer.Option(3.0, help="timed seconds per backend"),
    ultralytics: bool = typer.Option(True, help="also time the ultralytics (torch) backend"),
    as_json: bool = typer.Option(False, "--json"),
    model: Path = typer.Option(None, "--model", help="ONNX weights; default models/shelf-gap.onnx"),
    imgsz: int = typer.Option(None, "--imgsz", help="input size; default the model's own"),
) -> None:
    """Detector frames/s at the working resolution: ONNX Runtime batch 1 (baseline), batched,
    end to end from JPEG bytes (decode, letterbox, inference, NMS), ultralytics."""
    from backroom.vision.evaluate import bench_vision

    result = bench_vision(
        model=model, threads=threads, seconds=seconds, ultralytics=ultralytics, imgsz=imgsz
    )
    _emit(result, as_json)


@bench_app.command("scale")
def scale(
    keys: int = typer.Option(100_000, help="store×SKU keys pre-loaded at steady state"),
    store: str = typer.Option("", help="table store: rocksdb:// or memory:// (default BACKROOM_STORE)"),
    events: int = typer.Option(200_000, help="key-diverse events timed (at most one per key)"),
    rate: float = typer.Option(1000.0, help="events/s for the latency phase (key-diverse)"),
    seconds: float = typer.Option(20.0, help="length of the scored latency phase"),
    keep_topics: bool = typer.Option(False, help="leave the run's topics and data dir"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """N keys on one worker: key-diverse events/s, RSS, disk per key, latency, recovery after kill -9."""
    from bench.scale import ScaleConfig, bench_scale

    settings = _broker_settings()
    cfg = ScaleConfig(keys=keys, store=store or settings.store, events=events, rate=rate,
                      latency_seconds=seconds, keep_topics=keep_topics)
    result = asyncio.run(bench_scale(settings, cfg))
    _emit(result, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
