"""DuckDB history of every topic: one table per topic, idempotent batched inserts, query views.

Filled by `backroom history` (consumers/duckdb_sink.py); read by `backroom ask` and the
dashboard. From Python:

    store = HistoryStore(".backroom/history.duckdb")
    store.insert_batch("pos.sales", [(partition, offset, key, value_dict), ...])
    store.query("SELECT * FROM open_alerts")

Idempotence: tables of events that carry an `event_id` (sales, scans, frames) have it as primary
key; every other table is keyed by the Kafka coordinates (topic, partition, offset). Inserts are
`INSERT OR IGNORE`, so consuming a topic again — a rebalance, a crash before commit, a new
consumer group — adds no duplicate rows.

DuckDB lets one process write a file while nobody else has it open, so the writer releases the
file when idle (`release()`) and readers retry briefly while it is busy (`HistoryBusy`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
from pydantic import ValidationError

from backroom import records

# Kafka coordinates stored with every row; prefixed so they never clash with contract fields
# (dead-letter values have their own `partition` and `offset`).
META_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kafka_topic", "VARCHAR NOT NULL"),
    ("kafka_partition", "INTEGER NOT NULL"),
    ("kafka_offset", "BIGINT NOT NULL"),
    ("kafka_key", "VARCHAR"),
)


@dataclass(frozen=True)
class Table:
    name: str
    topic: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type) of the value fields
    pk: tuple[str, ...]
    key_fields: tuple[str, ...] = ()  # fields taken from the Kafka key "a:b" when absent in the value

    @property
    def all_columns(self) -> tuple[tuple[str, str], ...]:
        return (*self.columns, *META_COLUMNS)


_OFFSET_PK = ("kafka_topic", "kafka_partition", "kafka_offset")

TABLES: tuple[Table, ...] = (
    Table(
        "sales", "pos.sales",
        (("event_id", "VARCHAR"), ("ts", "TIMESTAMPTZ"), ("store_id", "VARCHAR"), ("sku", "VARCHAR"),
         ("qty", "INTEGER"), ("unit_price", "DOUBLE"), ("register_id", "VARCHAR")),
        ("event_id",),
    ),
    Table(
        "scans", "backroom.scans",
        (("event_id", "VARCHAR"), ("ts", "TIMESTAMPTZ"), ("store_id", "VARCHAR"), ("sku", "VARCHAR"),
         ("kind", "VARCHAR"), ("qty", "INTEGER"), ("location", "VARCHAR")),
        ("event_id",),
    ),
    Table(
        "frames", "camera.frames",
        (("event_id", "VARCHAR"), ("ts", "TIMESTAMPTZ"), ("store_id", "VARCHAR"),
         ("camera_id", "VARCHAR"), ("frame_uri", "VARCHAR"), ("width", "INTEGER"), ("height", "INTEGER")),
        ("event_id",),
    ),
    Table(
        "observations", "shelf.observations",
        (("ts", "TIMESTAMPTZ"), ("store_id", "VARCHAR"), ("sku", "VARCHAR"), ("camera_id", "VARCHAR"),
         ("frame_event_id", "VARCHAR"), ("facings_expected", "INTEGER"), ("facings_visible", "INTEGER"),
         ("fill_ratio", "DOUBLE"), ("confidence", "DOUBLE"), ("boxes", "JSON"), ("frame_uri", "VARCHAR")),
        _OFFSET_PK,
    ),
    Table(
        "inventory_state", "inventory.state",
        (("ts", "TIMESTAMPTZ"), ("store_id", "VARCHAR"), ("sku", "VARCHAR"), ("shelf_qty", "INTEGER"),
         ("backroom_qty", "INTEGER"), ("shelf_capacity", "INTEGER"), ("vision_fill", "DOUBLE"),
         ("demand_per_hour", "DOUBLE"), ("hours_to_shelf_out", "DOUBLE"),
         ("hours_to_stockout", "DOUBLE"), ("on_order", "INTEGER"), ("category", "VARCHAR"),
         ("min_shelf_qty", "INTEGER"), ("catalog_missing", "BOOLEAN"), ("last_event_id", "VARCHAR")),
        _OFFSET_PK,
    ),
    Table(
        "alerts", "alerts",
        (("alert_id", "VARCHAR"), ("ts", "TIMESTAMPTZ"), ("store_id", "VARCHAR"), ("sku", "VARCHAR"),
         ("type", "VARCHAR"), ("status", "VARCHAR"), ("severity", "VARCHAR"), ("message", "VARCHAR"),
         ("action", "VARCHAR"), ("evidence", "JSON")),
        _OFFSET_PK,
    ),
    Table(
        "stores", "catalog.stores",
        (("store_id", "VARCHAR"), ("name", "VARCHAR"), ("transfer_hours", "JSON")),
        _OFFSET_PK,
    ),
    Table(
        "alert_feedback", "alerts.feedback",
        (("event_id", "VARCHAR"), ("ts", "TIMESTAMPTZ"), ("alert_id", "VARCHAR"), ("store_id", "VARCHAR"),
         ("sku", "VARCHAR"), ("alert_type", "VARCHAR"), ("verdict", "VARCHAR"), ("source", "VARCHAR"),
         ("by", "VARCHAR"), ("note", "VARCHAR")),
        ("event_id",),
    ),
    Table(
        "dead_letter", "dead-letter",
        (("source_topic", "VARCHAR"), ("partition", "INTEGER"), ("offset", "BIGINT"), ("key", "VARCHAR"),
         ("error", "VARCHAR"), ("raw", "VARCHAR")),
        _OFFSET_PK,
    ),
    Table(
        "catalog", "catalog.skus",
        (("store_id", "VARCHAR"), ("sku", "VARCHAR"), ("name", "VARCHAR"), ("category", "VARCHAR"),
         ("shelf_capacity", "INTEGER"), ("min_shelf_qty", "INTEGER"), ("lead_time_hours", "DOUBLE"),
         ("case_pack", "INTEGER"), ("unit_cost", "DOUBLE"), ("aisle", "VARCHAR")),
        _OFFSET_PK,
        key_fields=("store_id",),
    ),
    Table(
        "planograms", "catalog.planograms",
        (("store_id", "VARCHAR"), ("camera_id", "VARCHAR"), ("slots", "JSON")),
        _OFFSET_PK,
    ),
)
BY_TOPIC: dict[str, Table] = {t.topic: t for t in TABLES}
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

VIEWS: dict[str, str] = {
    # Latest state per store x SKU; one store x SKU lives on one partition, so ts then offset
    # orders its states.
    "inventory_latest": """SELECT * FROM inventory_state
        QUALIFY row_number() OVER (PARTITION BY store_id, sku ORDER BY ts DESC, kafka_offset DESC) = 1""",
    "alerts_latest": """SELECT * FROM alerts
        QUALIFY row_number() OVER (PARTITION BY alert_id ORDER BY ts DESC, kafka_offset DESC) = 1""",
    "open_alerts": "SELECT * FROM alerts_latest WHERE status <> 'resolved'",
    # Compacted-topic semantics: the last record per key wins.
    "catalog_latest": """SELECT * FROM catalog
        QUALIFY row_number() OVER (PARTITION BY store_id, sku ORDER BY kafka_offset DESC) = 1""",
}
RELATIONS: frozenset[str] = frozenset({t.name for t in TABLES} | set(VIEWS))
JSON_TYPES = {"JSON"}


def history_path(settings: Any) -> Path:
    """`settings.history_file`, default `<data_dir>/history.duckdb`."""
    explicit = getattr(settings, "history_file", None)
    return Path(explicit) if explicit else Path(settings.data_dir) / "history.duckdb"


class HistoryBusy(RuntimeError):
    """Another process holds the DuckDB file for writing (the sink); try again shortly."""


Row = tuple[int, int, str | None, dict[str, Any]]


@dataclass
class InsertResult:
    inserted: int
    invalid: int

    def __iadd__(self, other: InsertResult) -> InsertResult:
        self.inserted += other.inserted
        self.invalid += other.invalid
        return self


def _table_for(topic: str) -> Table:
    if topic in BY_TOPIC:
        return BY_TOPIC[topic]
    if topic in BY_NAME:
        return BY_NAME[topic]
    # A prefixed topic ("test-42.pos.sales"): match the contract name at the end.
    for name, table in BY_TOPIC.items():
        if topic.endswith(name):
            return table
    raise KeyError(f"no history table for topic {topic!r}")


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "being used by another" in text or "different configuration" in text


class HistoryStore:
    def __init__(self, path: Path | str = ":memory:", *, lock_timeout_s: float = 5.0) -> None:
        self.path = str(path)
        self.lock_timeout_s = lock_timeout_s
        self._con: duckdb.DuckDBPyConnection | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    # --- connections -------------------------------------------------------------------------

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:"

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        config: dict[str, str | bool | int | float | list[str]] = (
            {"enable_external_access": False} if read_only else {}
        )
        while True:
            try:
                return duckdb.connect(self.path, read_only=read_only, config=config)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    if _is_lock_error(exc):
                        raise HistoryBusy(
                            f"{self.path} is held by another process (the history sink?); "
                            "try again in a moment"
                        ) from None
                    raise
                time.sleep(0.1)

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The read-write connection, opened (and the schema created) on first use."""
        if self._con is None:
            self._con = self._open(read_only=False)
            self._con.execute("SET TimeZone = 'UTC'")
            self._create_schema(self._con)
        return self._con

    def read_connection(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection that cannot touch files outside the database.

        A file store releases its own writer first: DuckDB refuses two differently configured
        connections to one file in one process. An in-memory store (tests) has only its writer.
        """
        if self.in_memory:
            return self.connection().cursor()
        if not Path(self.path).exists():
            self.connection()  # create the schema so an empty history answers "no rows"
        self.release()
        con = self._open(read_only=True)
        con.execute("SET TimeZone = 'UTC'")
        return con

    def release(self) -> None:
        """Close the writer so other processes can open the file; reopened on next write."""
        if self._con is not None and not self.in_memory:
            self._con.close()
            self._con = None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _create_schema(con: duckdb.DuckDBPyConnection) -> None:
        for t in TABLES:
            cols = ", ".join(f'"{n}" {typ}' for n, typ in t.all_columns)
            pk = ", ".join(f'"{c}"' for c in t.pk)
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {t.name} ({cols}, "
                "loaded_at TIMESTAMPTZ DEFAULT current_timestamp, "
                f"PRIMARY KEY ({pk}))"
            )
        for name, sql in VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")

    # --- writing ------------------------------------------------------------------------------

    def insert_batch(self, topic: str, rows: Sequence[Row], *, topic_name: str | None = None) -> InsertResult:
        """Insert `(partition, offset, key, value_dict)` rows of one topic; duplicates are ignored.

        `topic` is the contract name ("pos.sales") or a prefixed one; `topic_name` is what is
        stored in `kafka_topic` (default `topic`). Values that fail the contract record are
        skipped and counted as invalid: the worker routes those to dead-letter, which is stored.
        """
        table = _table_for(topic)
        record_type = records.TOPIC_RECORDS[table.topic]
        stored_topic = topic_name or topic
        columns: dict[str, list[Any]] = {name: [] for name, _ in table.all_columns}
        invalid = 0
        for partition, offset, key, value in rows:
            fields = _normalise(record_type, table, key, value)
            if fields is None:
                invalid += 1
                continue
            for name, typ in table.columns:
                v = fields.get(name)
                if typ in JSON_TYPES and v is not None:
                    v = orjson.dumps(v).decode()
                elif isinstance(v, datetime):
                    v = v.isoformat()
                columns[name].append(v)
            columns["kafka_topic"].append(stored_topic)
            columns["kafka_partition"].append(partition)
            columns["kafka_offset"].append(offset)
            columns["kafka_key"].append(key)
        if not columns["kafka_offset"]:
            return InsertResult(0, invalid)
        names = [n for n, _ in table.all_columns]
        # Column-wise parameters unnested side by side: one statement per batch, no per-row calls.
        select = ", ".join(
            f"CAST(unnest(${i + 1}::VARCHAR[]) AS {_base_type(typ)}) AS \"{n}\""
            if typ in JSON_TYPES or typ == "TIMESTAMPTZ"
            else f"unnest(${i + 1}::{_base_type(typ)}[]) AS \"{n}\""
            for i, (n, typ) in enumerate(table.all_columns)
        )
        quoted = ", ".join(f'"{n}"' for n in names)
        con = self.connection()
        result = con.execute(
            f"INSERT OR IGNORE INTO {table.name} ({quoted}) SELECT {select}",
            [columns[n] for n in names],
        ).fetchone()
        return InsertResult(int(result[0]) if result else 0, invalid)

    # --- reading ------------------------------------------------------------------------------

    def query(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a read-only query; returns (column names, rows)."""
        con = self.read_connection()
        try:
            cur = con.execute(sql, params or [])
            cols = [d[0] for d in cur.description or []]
            return cols, cur.fetchall()
        finally:
            if not self.in_memory:
                con.close()

    def count(self, table: str) -> int:
        if table not in RELATIONS:
            raise KeyError(f"unknown table {table!r}")
        return int(self.query(f"SELECT count(*) FROM {table}")[1][0][0])

    def counts(self) -> dict[str, int]:
        sql = " UNION ALL ".join(f"SELECT '{t.name}', count(*) FROM {t.name}" for t in TABLES)
        return {name: int(n) for name, n in self.query(sql)[1]}


def _base_type(typ: str) -> str:
    return typ.split()[0]


def _normalise(
    record_type: type[records.Record], table: Table, key: str | None, value: dict[str, Any]
) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    data = dict(value)
    if key and table.key_fields:
        # catalog.skus values carry no store: it is the key's first part ("*" for every store).
        parts = key.split(":", 1)
        for fld, part in zip(table.key_fields, parts, strict=False):
            data.setdefault(fld, part)
    ts = data.get("ts")
    if isinstance(ts, str):
        try:
            data["ts"] = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            return None
    try:
        rec = record_type.model_validate(data)
    except (ValidationError, ValueError):
        return None
    out = rec.model_dump()
    for fld in table.key_fields:
        out[fld] = data.get(fld)
    return out


def iter_topics() -> Iterable[str]:
    return BY_TOPIC.keys()
