"""Vision verbs: `backroom render-dataset`, `train-detector`, `detect`, `eval-detector`.

Each is a thin wrapper over backroom/vision/*; `backroom <verb> --help` shows the options.
`bench_vision` (speed, JSON) is mounted by the core CLI as `backroom bench vision --json`.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from backroom.settings import get_settings


def _size(spec: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"size must be WIDTHxHEIGHT, got {spec!r}") from None
    return w, h


def render_dataset_cmd(
    out: Path = typer.Argument(..., help="output folder (images/, labels/, data.yaml)"),
    n: int = typer.Option(200, "--n", min=1, help="frames to render"),
    seed: int = typer.Option(1, "--seed"),
    hard: bool = typer.Option(False, "--hard", help="harder settings than training"),
    size: str = typer.Option("640x480", "--size", help="frame WIDTHxHEIGHT"),
) -> None:
    """Render an ultralytics dataset of synthetic shelf frames with product/gap labels."""
    from backroom.vision.render import render_dataset

    counts = render_dataset(out, n, seed, hard=hard, size=_size(size))
    typer.echo(json.dumps({"out": str(out), **counts}))


def train_detector_cmd(
    n: int = typer.Option(1200, "--n", help="frames rendered for training (15% validation)"),
    seed: int = typer.Option(1, "--seed"),
    epochs: int = typer.Option(15, "--epochs"),
    imgsz: int = typer.Option(320, "--imgsz"),
    batch: int = typer.Option(16, "--batch"),
    arch: str = typer.Option("auto", "--arch", help="auto (compare), yolov8n or yolo11n"),
    compare_n: int = typer.Option(400, "--compare-n"),
    compare_epochs: int = typer.Option(5, "--compare-epochs"),
    name: str = typer.Option("shelf-gap", "--name"),
    models_dir: Path = typer.Option(Path("models"), "--models-dir"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, or a CUDA index"),
    workers: int = typer.Option(2, "--workers"),
    init: Path = typer.Option(None, "--init", help="start from these weights (ours)"),
    hours: float = typer.Option(None, "--hours", help="wall-clock cap; epochs re-fitted to it"),
    threads: int = typer.Option(
        0, "--threads", help="torch CPU threads, 0 = all cores; 1 is faster on a busy machine"
    ),
    data: list[Path] = typer.Option(
        None, "--data", help="YOLO-format labelled photos (repeatable), mixed with the renders"
    ),
    names: str = typer.Option(
        None, "--names", help="class names of ids 0,1,.. for every --data (e.g. 'empty')"
    ),
    real_repeat: int = typer.Option(1, "--real-repeat", help="real photos listed N times"),
    out: Path = typer.Option(
        None, "--out", help="with --data: write OUT/<name>.pt, .onnx, .md (not models/)"
    ),
) -> None:
    """Train the shelf detector on rendered frames, or fine-tune it (--init) on your own labelled
    photos mixed with renders (--data); write .pt, .onnx and a model card."""
    from backroom.vision.train import TrainConfig, train_detector

    if arch not in ("auto", "yolov8n", "yolo11n"):
        raise typer.BadParameter("--arch: auto, yolov8n or yolo11n")
    for d in data or []:
        if not d.is_dir():
            raise typer.BadParameter(f"--data {d}: not a folder")
    if data and init is None:
        raise typer.BadParameter("--data needs --init (e.g. models/shelf-gap.pt) to fine-tune")
    cfg = TrainConfig(
        n=n,
        seed=seed,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        arch=arch,
        compare_n=compare_n,
        compare_epochs=compare_epochs,
        name=name,
        models_dir=models_dir,
        device=device,
        workers=workers,
        init=init,
        hours=hours,
        threads=threads,
        data=list(data or []),
        names=names.split(",") if names else None,
        real_repeat=real_repeat,
        out=out,
        work_dir=get_settings().data_dir / "train",
        command="backroom " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    report = train_detector(cfg, log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps({k: report[k] for k in ("name", "arch", "final", "pt", "onnx")}))


def detect_cmd(
    images: list[Path] = typer.Argument(..., help="image files (JPEG/PNG)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per image"),
    planogram: Path = typer.Option(None, "--planogram", help="Planogram JSON: add per-SKU fill"),
    backend: str = typer.Option(None, "--backend", help="onnx (default) or ultralytics"),
    model: Path = typer.Option(None, "--model", help="weights; default models/shelf-gap.onnx"),
    conf: float = typer.Option(None, "--conf", help="confidence threshold"),
    threads: int = typer.Option(None, "--threads", help="inference threads; 0 = all cores"),
    gap_cues: bool = typer.Option(
        None, "--gap-cues/--no-gap-cues", help="appearance-cue gaps (default BACKROOM_GAP_CUES)"
    ),
) -> None:
    """Detect products and gaps; with --json print exactly one JSON object per image."""
    from backroom.vision.detect_files import detect_images

    s = get_settings()
    failed = 0
    for obj in detect_images(
        images,
        planogram=planogram,
        backend=backend or s.detector_backend,
        model=model or s.detector_model,
        conf=conf if conf is not None else s.detector_conf,
        threads=threads if threads is not None else s.detector_threads,
        max_pixels=s.frame_max_pixels,
        max_bytes=s.frame_max_bytes,
        gap_cues=gap_cues if gap_cues is not None else s.gap_cues,
    ):
        failed += "error" in obj
        if as_json:
            typer.echo(json.dumps(obj, separators=(",", ":")))
        else:
            typer.echo(_human(obj))
    if failed:
        raise typer.Exit(1)


def _human(obj: dict) -> str:
    if "error" in obj:
        return f"{obj['image']}: ERROR {obj['error']}"
    dets = obj["detections"]
    gaps = sum(d["cls"] == "gap" for d in dets)
    lines = [
        f"{obj['image']}: {obj['width']}x{obj['height']}, {len(dets) - gaps} products, {gaps} gaps"
    ]
    for sl in obj.get("slots", []):
        lines.append(
            f"  {sl['sku']}: {sl['facings_visible']}/{sl['facings_expected']} facings "
            f"(fill {sl['fill_ratio']:.2f}, conf {sl['confidence']:.2f})"
        )
    return "\n".join(lines)


def eval_detector_cmd(
    n: int = typer.Option(200, "--n"),
    seed: int = typer.Option(999, "--seed"),
    hard: bool = typer.Option(True, "--hard/--normal"),
    model: Path = typer.Option(None, "--model"),
    threads: int = typer.Option(0, "--threads"),
    speed: bool = typer.Option(True, "--speed/--no-speed"),
    as_json: bool = typer.Option(False, "--json"),
    data: Path = typer.Option(
        None, "--data", help="YOLO-format labelled folder: score real photos instead of renders"
    ),
    split: list[str] = typer.Option(None, "--split", help="with --data: only these splits"),
    imgsz: int = typer.Option(None, "--imgsz", help="with --data: run at this input size"),
    conf: float = typer.Option(0.25, "--conf", help="operating confidence for recall/precision"),
    per_image: bool = typer.Option(True, "--per-image/--no-per-image"),
    row_gaps: bool = typer.Option(
        False, "--row-gaps", help="with --data: add gaps inferred from product rows"
    ),
    gap_cues: bool = typer.Option(
        False, "--gap-cues/--no-gap-cues", help="add appearance-cue gaps along product rows"
    ),
    names: str = typer.Option(
        None,
        "--names",
        help="with --data: class names of ids 0,1,.. (e.g. 'empty'), over data.yaml",
    ),
) -> None:
    """Held-out accuracy and frames/s. Renders: gap mAP50, per-slot gap recall/precision.
    --data DIR: gap box recall/precision at IoU 0.3, gap AP50, per-image counts."""
    if data is not None:
        from backroom.vision.evaluate import eval_labelled
        from backroom.vision.yolo_data import DatasetError

        try:
            res = eval_labelled(
                data,
                model=model,
                threads=threads,
                conf=conf,
                imgsz=imgsz,
                splits=split or None,
                per_image=per_image,
                names=names.split(",") if names else None,
                row_gaps=row_gaps,
                gap_cues=gap_cues,
            )
        except DatasetError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(json.dumps(res) if as_json else json.dumps(res, indent=2))
        return
    from backroom.vision.evaluate import eval_detector

    res = eval_detector(
        n=n, seed=seed, hard=hard, model=model, threads=threads, speed=speed, gap_cues=gap_cues
    )
    typer.echo(json.dumps(res) if as_json else json.dumps(res, indent=2))


def bench_vision(
    model: Path | None = None, threads: int = 0, seconds: float = 3.0, ultralytics: bool = True
) -> dict:
    """Speed of the vision detector (for `backroom bench vision --json`): ONNX batch 1 is the
    baseline; batch 8 and the ultralytics backend are ratios against it."""
    from backroom.vision.evaluate import bench_vision as _bench

    return _bench(model=model, threads=threads, seconds=seconds, ultralytics=ultralytics)


def register(app: typer.Typer) -> None:
    app.command("render-dataset")(render_dataset_cmd)
    app.command("train-detector")(train_detector_cmd)
    app.command("detect")(detect_cmd)
    app.command("eval-detector")(eval_detector_cmd)
