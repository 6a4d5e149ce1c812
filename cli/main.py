"""The `backroom` command line: `backroom --help` lists the verbs.

Verbs are registered from `cli/commands/<area>.py`; each is a thin wrapper around a plain
function. Heavy imports (Faust, ultralytics, DuckDB) happen inside the verbs, so `--help` is fast.
"""

from __future__ import annotations

import importlib
import json

import typer

from backroom.settings import get_settings

app = typer.Typer(
    help="Backroom: real-time inventory intelligence. See. Sense. Restock.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Area modules; a missing one (an area not built yet) is skipped rather than breaking the CLI.
AREAS = ("core", "bench", "vision", "demand", "data", "ops", "labels")


@app.command()
def schema(topic: str = typer.Argument(None, help="one topic; default: all")) -> None:
    """Print the JSON Schemas of the contract's event records."""
    from backroom.records import json_schemas

    schemas = json_schemas()
    if topic:
        if topic not in schemas:
            raise typer.BadParameter(f"unknown topic {topic!r}; known: {', '.join(schemas)}")
        schemas = {topic: schemas[topic]}
    typer.echo(json.dumps(schemas, indent=2))


@app.command("settings")
def show_settings() -> None:
    """Print the settings in force (BACKROOM_* environment and .env)."""
    s = get_settings()
    data = s.model_dump(mode="json")
    for secret in ("dashboard_token", "llm_api_key"):
        if data.get(secret):
            data[secret] = "***"
    typer.echo(json.dumps(data, indent=2))


for _area in AREAS:
    try:
        _module = importlib.import_module(f"cli.commands.{_area}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"cli.commands.{_area}":
            raise
        continue
    _module.register(app)


def main() -> None:
    from backroom.logs import configure_logging

    try:
        configure_logging(get_settings())  # BACKROOM_LOG_FORMAT=json: JSON lines
    except Exception:  # invalid settings are reported by the verb that reads them
        pass
    app()


if __name__ == "__main__":
    main()
