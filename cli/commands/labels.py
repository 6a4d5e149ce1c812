"""Label verbs: the frames people corrected on the dashboard, as YOLO training data.

    backroom labels list [--json]            # examples saved under <data_dir>/labels
    backroom labels export DIR [--json]      # DIR/images, DIR/labels, DIR/data.yaml
    backroom train-detector --data DIR ...   # fine-tune on them (docs/dashboard.md)

Each verb calls `backroom.vision.labels.LabelStore` and prints its result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from backroom.settings import get_settings

if TYPE_CHECKING:
    from backroom.vision.labels import LabelStore

labels_app = typer.Typer(
    help="Frames labelled from the dashboard's evidence panel (YOLO format).", no_args_is_help=True
)


def _store() -> LabelStore:
    from backroom.vision.labels import LabelStore

    s = get_settings()
    return LabelStore(s.data_dir / "labels", s.frames_dir, s.frame_max_bytes, s.frame_max_pixels)


@labels_app.command("export")
def export(
    dest: Path = typer.Argument(..., help="folder to write images/, labels/ and data.yaml into"),
    as_json: bool = typer.Option(False, "--json", help="print the counts as JSON"),
) -> None:
    """Copy every saved example into DEST as a YOLO dataset and print the counts."""
    from backroom.vision.labels import LabelError

    try:
        summary = _store().export(dest)
    except LabelError as exc:
        typer.secho(f"labels export: {exc.reason}", fg="red", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.secho(f"labels export: cannot write {dest}: {exc.strerror}", fg="red", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    b = summary.boxes
    typer.echo(
        f"exported {summary.images} labelled frames to {dest}: {b['product']} product and "
        f"{b['gap']} gap boxes ({summary.drawn} gaps drawn by people, {summary.wrong} detector "
        f"gaps dropped as wrong)"
    )
    for ident in summary.skipped:
        typer.secho(f"skipped {ident}: unreadable label file", fg="yellow", err=True)
    typer.echo(f"train on it: backroom train-detector --data {dest / 'data.yaml'}")


@labels_app.command("list")
def list_labels(
    recent: int = typer.Option(20, "--recent", min=0, help="how many recent examples to show"),
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """How many frames are labelled, with the most recent ones."""
    summary = _store().summary(recent)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    b = summary["boxes"]
    typer.echo(f"{summary['count']} labelled frames in {summary['root']}: "
               f"{b['product']} product, {b['gap']} gap boxes")
    for m in summary["recent"]:
        ch = m.get("changes", {})
        typer.echo(f"  {m['id']}  {m.get('frame_ts')}  {m.get('frame_uri')}  "
                   f"-{len(ch.get('wrong_gaps', []))} wrong +{len(ch.get('drawn_gaps', []))} drawn")


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels")
