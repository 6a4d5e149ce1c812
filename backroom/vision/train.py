"""Train Backroom's shelf-gap detector on frames it renders itself, or fine-tune it on your photos.

Run: `backroom train-detector` (defaults fit a 2-core CPU in about 40 minutes), e.g.
`backroom train-detector --n 1000 --epochs 14 --compare-n 400 --compare-epochs 5 --imgsz 320`.
It renders a dataset, trains YOLOv8n and YOLO11n (built from their yaml: no pretrained
download) for a short equal budget, keeps the architecture with the better gap mAP50, trains
it further, and writes `models/<name>.pt`, `models/<name>.onnx` and `models/<name>.md`.
`backroom train-detector --data DIR --init models/shelf-gap.pt --out OUT/` fine-tunes the
shipped weights on YOLO-format labelled photos (yolo_data.py) mixed with `--n` renders and writes
`OUT/shelf-gap.{pt,onnx,md}`. Needs the `[train]` extra (ultralytics, torch, onnx, onnxslim, polars).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Offline before ultralytics is imported: it must never try to fetch weights or fonts.
os.environ.setdefault("YOLO_OFFLINE", "1")

ARCHS = ("yolov8n", "yolo11n")


@dataclass
class TrainConfig:
    n: int = 1000
    seed: int = 1
    epochs: int = 14
    imgsz: int = 320
    batch: int = 16
    workers: int = 2
    arch: str = "auto"  # auto = compare ARCHS, keep the better
    compare_n: int = 400
    compare_epochs: int = 5
    name: str = "shelf-gap"
    models_dir: Path = Path("models")
    work_dir: Path = Path(".backroom/train")
    device: str = "auto"  # auto = GPU 0 when torch sees one, else cpu
    threads: int = 0  # torch CPU threads; 0 = every core (ultralytics would leave one idle)
    # Optimizer step every batch: ultralytics' nominal batch of 64 would accumulate 4 batches of
    # 16 per step, a quarter of the updates — too few for a from-scratch run on a CPU budget.
    nbs: int = 0  # 0 = batch
    val_every_epoch: bool = False  # validate only at the end: saves ~15% of CPU training time
    init: Path | None = None  # continue from these weights (ours; never a download)
    hours: float | None = None  # wall-clock cap: ultralytics re-fits the epoch count to it
    compare_results: list[dict[str, Any]] = field(default_factory=list)  # measured earlier
    # Labelled photos (YOLO folders, see yolo_data.py) mixed with `n` rendered frames; with
    # data the run fine-tunes `init` and writes into `out` instead of `models_dir`.
    data: list[Path] = field(default_factory=list)
    names: list[str] | None = None  # class names of ids 0,1,.. for every --data folder
    real_repeat: int = 1  # each real training photo listed this many times per epoch
    pseudo_products: bool = True  # label products on gap-only sets with the init model
    out: Path | None = None
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _device(spec: str) -> str:
    if spec != "auto":
        return spec
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def _train_args(
    cfg: TrainConfig, data: Path, epochs: int, run: str, init: Path | None = None
) -> dict[str, Any]:
    return dict(
        data=str(data),
        epochs=epochs,
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        workers=cfg.workers,
        device=_device(cfg.device),
        project=str(cfg.work_dir.resolve() / "runs"),
        name=run,
        exist_ok=True,
        # False = random init; a path = start from those weights (ultralytics otherwise drops the
        # loaded checkpoint when pretrained=False).
        pretrained=str(init) if init is not None else False,
        plots=False,
        amp=False,
        seed=cfg.seed,
        deterministic=False,
        cache="ram",
        verbose=False,
        # Shelves are left-right symmetric but never upside down; mild scale/translate keeps
        # gap boxes (which span a whole shelf opening) intact; mosaic off for the last epochs.
        fliplr=0.5,
        flipud=0.0,
        degrees=0.0,
        scale=0.3,
        translate=0.1,
        mosaic=1.0,
        close_mosaic=max(1, epochs // 4),
        warmup_epochs=min(2.0, max(0.0, epochs / 5)),
        patience=100,
        nbs=cfg.nbs or cfg.batch,
        val=cfg.val_every_epoch,
        **({"time": cfg.hours} if cfg.hours else {}),
        **cfg.extra,
    )


def _metrics(trainer_or_val: Any) -> dict[str, float]:
    """mAP50 overall and per class from an ultralytics validator/metrics object."""
    m = trainer_or_val
    box = m.box
    out = {"map50": float(box.map50), "map50_95": float(box.map)}
    names = m.names
    for i, ci in enumerate(box.ap_class_index):
        out[f"{names[int(ci)]}_ap50"] = float(box.ap50[i])
    return out


def train_one(cfg: TrainConfig, arch: str, data: Path, epochs: int, init: Path | None) -> dict:
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    # ultralytics pins CPU training to cpu_count-1 threads: a whole core of 2 left idle.
    torch_utils.NUM_THREADS = cfg.threads or os.cpu_count() or 1  # type: ignore[attr-defined]
    import torch

    # Denormal floats appear as training converges and make CPU convolutions several times
    # slower (seen here: 1.2 s/batch in epoch 1, 6 s by epoch 3); flushing them to zero costs
    # nothing in accuracy.
    torch.set_flush_denormal(True)
    # Continue from our own earlier weights when given (never a download), else from scratch.
    model = YOLO(str(init)) if init is not None else YOLO(f"{arch}.yaml")
    run = f"{arch}-{epochs}e-{int(time.time())}"
    t0 = time.perf_counter()
    model.train(**_train_args(cfg, data, epochs, run, init))
    secs = time.perf_counter() - t0
    trainer = getattr(model, "trainer", None)
    if trainer is not None and isinstance(getattr(trainer, "epoch", None), int):
        epochs = trainer.epoch + 1  # a --hours cap may end the run early
    best = cfg.work_dir.resolve() / "runs" / run / "weights" / "best.pt"
    val = YOLO(str(best)).val(
        data=str(data),
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        device=_device(cfg.device),
        plots=False,
        verbose=False,
        project=str(cfg.work_dir.resolve() / "runs"),
        name=run + "-val",
        exist_ok=True,
    )
    return {
        "arch": arch,
        "epochs": epochs,
        "seconds": round(secs, 1),
        "weights": str(best),
        **_metrics(val),
    }


def export_onnx(pt: Path, imgsz: int) -> Path:
    """ONNX with a dynamic batch axis (fixed square input), simplified, for ONNX Runtime."""
    from ultralytics import YOLO

    out = YOLO(str(pt)).export(
        format="onnx", imgsz=imgsz, dynamic=True, simplify=True, opset=17, device="cpu"
    )
    return Path(out)


def _provenance(root: Path) -> str:
    """A dataset's own provenance line: PROVENANCE(.txt|.md) in its folder, else its path."""
    for name in ("PROVENANCE", "PROVENANCE.txt", "PROVENANCE.md"):
        f = root / name
        if f.is_file():
            return " ".join(f.read_text().split())
    return "(no PROVENANCE file: record repository, commit and licence yourself)"


def build_mix(cfg: TrainConfig, render_dir: Path, log: Any = print) -> tuple[Path, list[dict]]:
    """One ultralytics dataset: the labelled photos of every --data folder (their train split,
    repeated `real_repeat` times; their other splits for validation) plus the rendered frames,
    as image lists. Gap-only sets get pseudo-labelled products from the init model."""
    from backroom.vision import CLASSES, PRODUCT
    from backroom.vision.yolo_data import add_pseudo_products, load_dataset, split_items, write_yolo

    mix = cfg.work_dir / f"mix-{int(time.time())}"
    train_list: list[str] = []
    val_list: list[str] = []
    sources: list[dict] = []
    det = None
    for k, root in enumerate(cfg.data):
        ds = load_dataset(root, names=cfg.names)
        tr, va = split_items(ds)
        info: dict[str, Any] = {
            "path": str(root),
            "provenance": _provenance(Path(root)),
            "class_names": ds.names,
            "train_images": len(tr),
            "val_images": len(va),
            **ds.counts(),
        }
        if cfg.pseudo_products and PRODUCT not in ds.mapping.values() and cfg.init is not None:
            if det is None:
                from backroom.vision.detector import UltralyticsDetector

                det = UltralyticsDetector(cfg.init, imgsz=cfg.imgsz, conf=0.5, batch=1)
            info["pseudo_products"] = add_pseudo_products(tr + va, det)
        for split, items in (("train", tr), ("val", va)):
            write_yolo(items, mix / f"src{k}", split)
            files = sorted(str(p.resolve()) for p in (mix / f"src{k}" / "images" / split).iterdir())
            (train_list if split == "train" else val_list).extend(
                files * (cfg.real_repeat if split == "train" else 1)
            )
        sources.append(info)
        log(f"data {root}: {json.dumps(info)}")
    for split, lst in (("train", train_list), ("val", val_list)):
        lst.extend(sorted(str(p.resolve()) for p in (render_dir / "images" / split).iterdir()))
        (mix / f"{split}.txt").write_text("\n".join(lst) + "\n")
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    (mix / "data.yaml").write_text(
        f"path: {mix.resolve()}\ntrain: train.txt\nval: val.txt\nnames:\n{names}\n"
    )
    return mix / "data.yaml", sources


def train_detector(cfg: TrainConfig, log: Any = print) -> dict[str, Any]:
    from backroom.vision.render import render_dataset

    started = datetime.now(UTC)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    cfg.models_dir.mkdir(parents=True, exist_ok=True)
    data_dir = cfg.work_dir / f"data-n{cfg.n}-s{cfg.seed}"
    if not (data_dir / "data.yaml").exists():
        t = time.perf_counter()
        counts = render_dataset(data_dir, cfg.n, cfg.seed)
        log(f"rendered {counts} in {time.perf_counter() - t:.0f}s -> {data_dir}")
    data = data_dir / "data.yaml"
    sources: list[dict] = []
    if cfg.data:
        data, sources = build_mix(cfg, data_dir, log)
        if cfg.out is not None:
            cfg.models_dir = cfg.out
            cfg.models_dir.mkdir(parents=True, exist_ok=True)

    compare: list[dict] = list(cfg.compare_results)
    arch = cfg.arch
    init: Path | None
    if cfg.init is not None and arch == "auto":
        arch = "init"  # fine-tune: the architecture is the init weights'
    if arch == "auto":
        cdir = cfg.work_dir / f"data-n{cfg.compare_n}-s{cfg.seed}"
        if not (cdir / "data.yaml").exists():
            render_dataset(cdir, cfg.compare_n, cfg.seed)
        for a in ARCHS:
            r = train_one(cfg, a, cdir / "data.yaml", cfg.compare_epochs, None)
            log(f"compare {a}: {json.dumps(r)}")
            compare.append(r)
        win = max(compare, key=lambda r: (r.get("gap_ap50", 0.0), r["map50"]))
        arch, init = win["arch"], Path(win["weights"])
    else:
        init = cfg.init
    final = train_one(cfg, arch, data, cfg.epochs, init)
    log(f"final {arch}: {json.dumps(final)}")

    pt = cfg.models_dir / f"{cfg.name}.pt"
    shutil.copyfile(final["weights"], pt)
    onnx_path = export_onnx(pt, cfg.imgsz)
    report = {
        "name": cfg.name,
        "arch": arch,
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "config": {
            k: str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "data" else v
            for k, v in asdict(cfg).items()
        },
        "sources": sources,
        "compare": compare,
        "final": final,
        "pt": str(pt),
        "onnx": str(onnx_path),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, device {_device(cfg.device)}",
    }
    (cfg.models_dir / f"{cfg.name}.train.json").write_text(json.dumps(report, indent=2))
    write_model_card(cfg.models_dir / f"{cfg.name}.md", report)
    return report


def write_model_card(path: Path, report: dict[str, Any], evaluation: dict | None = None) -> None:
    """Markdown model card: data, settings, metrics, speed, the command that made it."""
    cfg = report["config"]
    fin = report["final"]
    init = cfg.get("init")
    origin = (
        f"fine-tuned from `{init}`"
        if init and init != "None"
        else f"**{report['arch']}** (ultralytics, built from yaml, trained from scratch;"
        " no pretrained weights)"
    )
    lines = [
        f"# {report['name']} — Backroom shelf-gap detector",
        "",
        f"Weights: {origin}. Classes: `0 product`, `1 gap`.",
        "",
        "## Data",
    ]
    for src in report.get("sources", []):
        lines.append(
            f"- labelled photos `{src['path']}`: {src['train_images']} train / "
            f"{src['val_images']} val images, {src['gap']} gap and {src['product']} product "
            f"boxes (+{src.get('pseudo_products', 0)} pseudo-labelled products from the init "
            f"model), classes {src['class_names']}; provenance: {src['provenance']}"
        )
    lines += [
        f"- {cfg['n']} frames rendered by `backroom.vision.render` (seed {cfg['seed']}, "
        "difficulty uniform 0..1, 15% held out for validation), 640×480 JPEG.",
        "- `gap` = one box per maximal run of adjacent empty facings along a shelf row, spanning "
        "the shelf opening's height (see render.py's docstring for why).",
        "",
        "## Settings",
        f"- imgsz {cfg['imgsz']}, batch {cfg['batch']}, epochs asked {cfg['epochs']}, "
        f"device `{report['machine']}`.",
        f"- started {report['started']}, finished {report['finished']}",
        "",
    ]
    if report["compare"]:
        lines += [
            "## Architecture comparison (equal short budget)",
            "| arch | epochs | seconds | mAP50 | gap AP50 | product AP50 |",
            "|---|---|---|---|---|---|",
        ]
    for r in report["compare"]:
        lines.append(
            f"| {r['arch']} | {r['epochs']} | {r['seconds']} | {r['map50']:.3f} | "
            f"{r.get('gap_ap50', 0):.3f} | {r.get('product_ap50', 0):.3f} |"
        )
    lines += [
        "",
        "## Final training (validation split of the training data)",
        f"- {fin['epochs']} epochs in {fin['seconds']} s; mAP50 {fin['map50']:.3f}, "
        f"gap AP50 {fin.get('gap_ap50', 0):.3f}, product AP50 {fin.get('product_ap50', 0):.3f}",
    ]
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    if evaluation:
        lines += ["", "## Held-out evaluation", "```json", json.dumps(evaluation, indent=2), "```"]
    lines += [
        "",
        "## Reproduce",
        "```",
        report["config"].get("command") or "backroom train-detector",
        "```",
        "",
    ]
    path.write_text("\n".join(lines))
