"""Structured logs: `BACKROOM_LOG_FORMAT=json backroom worker` logs one JSON object per line.

Each line has `ts` (UTC, ISO-8601), `level`, `logger`, `msg`, `process`, plus `exc` with the
traceback when there is one and any `extra={...}` fields the call passed; a log shipper (Loki,
Elastic, CloudWatch) indexes them without a parsing rule. `text` (the default) leaves logging as
each tool sets it up. `configure_logging` is called once by the CLI for every verb; the worker
hands `worker_logging_config` to Faust's Worker, which would otherwise replace the handlers.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from backroom.settings import Settings

# Attributes every LogRecord has; anything else on a record came from `extra=` and is kept.
# uvicorn adds `color_message` (the same text with ANSI colours) to some records: dropped too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # dictConfig passes through keys such as uvicorn's `use_colors`; they mean nothing here.
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        return orjson.dumps(out, default=str).decode()


def logging_config(level: str | int = "INFO") -> dict[str, Any]:
    """A dictConfig that sends every logger's records to stderr as JSON lines."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr}
        },
        "root": {"level": level, "handlers": ["json"]},
    }


def worker_logging_config(settings: Settings, level: str | int) -> dict[str, Any] | None:
    """What Faust's Worker gets as `logging_config`: None keeps its own (text) setup."""
    if settings.log_format != "json":
        return None
    return logging_config(level.upper() if isinstance(level, str) else level)


def configure_logging(settings: Settings) -> None:
    """Switch the process to JSON lines when `log_format` is json (no-op for text)."""
    if settings.log_format != "json":
        return
    logging.config.dictConfig(logging_config("INFO"))
    _uvicorn_json()


def _uvicorn_json() -> None:
    """Make uvicorn (dashboard, ingest API) log JSON too: it applies its own LOGGING_CONFIG at
    start, whose handlers format text; pointing its formatters at ours keeps its levels and
    access log. The dict is uvicorn's default argument, so changing it in place takes effect."""
    try:
        from uvicorn.config import LOGGING_CONFIG
    except ImportError:  # uvicorn is a dependency; a trimmed install just keeps text
        return
    for name in ("default", "access"):
        LOGGING_CONFIG["formatters"][name] = {"()": JsonFormatter}
