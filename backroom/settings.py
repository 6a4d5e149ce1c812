"""Backroom's one settings object.

Run `backroom settings` to print the values in force. Every value can be set with a
`BACKROOM_<NAME>` environment variable or a line in `.env`; `get_settings()` reads them once
and the result is passed down to everything that needs it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BACKROOM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port] of an existing cluster; unset = the embedded broker",
    )
    broker_host: str = "127.0.0.1"
    broker_port: int = 9092
    broker_controller_port: int | None = Field(
        default=None, description="KRaft controller port of the embedded broker; default port+1"
    )
    broker_heap_mb: int = 512
    broker_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "backroom",
        description="where Maven copies the broker jars, once per Kafka version",
    )
    kafka_version: str = "4.3.1"
    topic_prefix: str = Field(default="", description="prepended to every topic name")
    partitions: int = Field(default=4, ge=1, description="partitions of every co-partitioned topic")
    brokers: int = Field(
        default=1, ge=1, le=9,
        description="embedded KRaft nodes `backroom broker start` runs on this machine (3: a "
        "cluster with replication 3 and min.insync.replicas 2)",
    )
    replication_factor: int = Field(
        default=1, ge=1, description="replicas of every topic; default min(3, brokers) when embedded"
    )

    # --- worker --------------------------------------------------------------------------
    app_id: str = "backroom"
    store: str = Field(
        default="memory://",
        description="table store: memory:// (every key in RAM) or rocksdb:// (on disk, "
        "streams/rocksdb_store.py; docs/operations.md)",
    )
    store_cache_mb: int = Field(
        default=256, ge=8, description="rocksdb:// read cache (block cache) per table, all partitions"
    )
    dedup_window: int = Field(
        default=64, ge=1, description="event_ids remembered per store×SKU for idempotence"
    )
    max_event_bytes: int = Field(default=65536, ge=256)
    max_future_hours: float = Field(
        default=24.0, ge=0,
        description="an event more than this ahead of its store's latest event time (the worker, "
        "the ingest API) or of a file's latest time (`clean`) is refused; 0 = off "
        "(backroom/eventtime.py)",
    )
    session_timeout_s: float = Field(
        default=10.0, ge=6.0, description="a worker that stops heartbeating loses its partitions after this"
    )
    batch_size: int = Field(default=5000, ge=1, description="max events per agent batch")
    batch_within_s: float = Field(
        default=0.05, gt=0,
        description="batch cadence: a batch closes this long after the previous one (latency vs coalescing)",
    )
    bulk_ingest: bool = Field(
        default=True,
        description="sales and scans go from each fetch straight to the processor (not through "
        "Faust's per-message streams): several times the throughput",
    )
    live_states: int = Field(
        default=8192, ge=0,
        description="inventory states kept parsed between batches (~7 KB each; 0: parse every value "
        "read, as before)",
    )
    producer_linger_ms: float = Field(
        default=5.0, ge=0, description="worker producer linger: fewer, larger produce requests vs latency"
    )
    fetch_min_bytes: int = Field(
        default=65536, ge=1, description="worker fetches wait for this much data on the broker..."
    )
    fetch_max_wait_ms: int = Field(
        default=25, ge=1, description="...or this long: fewer fetch round trips vs latency"
    )

    # --- domain defaults (for SKUs with no catalog entry; flagged in state) ----------------
    default_shelf_capacity: int = 24
    default_min_shelf_qty: int = 6
    default_lead_time_hours: float = 48.0
    default_case_pack: int = 12
    horizon_hours: float = Field(default=48.0, gt=0, description="STOCKOUT_RISK horizon")
    service_level_z: float = Field(
        default=2.33, gt=0,
        description="safety stock z (2.33: a 99 % cycle service level, for the 99 % on-shelf "
        "target; 1.65 holds ~17 % less stock, docs/demand.md)",
    )
    staff_reaction_hours: float = 2.0
    # --- the store floor (docs/floor.md) ---------------------------------------------------
    silent_shelf: bool = Field(
        default=True,
        description="CHECK_SHELF: a selling SKU gone improbably quiet while the records say its shelf has stock "
        "(BACKROOM_SILENT_SHELF=0 turns it off)",
    )
    alert_budget: int | None = Field(
        default=None, ge=1,
        description="per store, the dashboard's feed shows this many open alerts, most costly (expected "
        "lost sales) first; the rest go to a 'more' list (unset: all in the feed)",
    )
    transfers: bool = Field(
        default=False,
        description="TRANSFER suggestions: a store running out before its supplier delivers gets "
        "another store's stock above its 48 h need (transfer times from catalog.stores)",
    )
    silent_shelf_threshold: float = Field(
        default=1e-3, gt=0, lt=1,
        description="CHECK_SHELF opens when the silence's chance under the store×SKU's own calibrated "
        "silences falls below this (more evidence asked per recorded unit on the shelf; docs/floor.md)",
    )

    # --- paths and serving -----------------------------------------------------------------
    data_dir: Path = Path(".backroom")
    frame_root: Path | None = Field(default=None, description="default: <data_dir>/frames")
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8000
    dashboard_token: str | None = None

    # --- optional LLM for `backroom ask` --------------------------------------------------
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"

    # --- vision (backroom/vision: frame loading, detector, pipeline) -------------------------
    frame_max_bytes: int = Field(default=20_000_000, ge=1024, description="largest frame file")
    frame_max_pixels: int = Field(
        default=25_000_000, ge=1, description="width*height limit checked before decoding"
    )
    detector_model: Path | None = Field(
        default=None, description="ONNX (or .pt) weights; default models/shelf-gap.onnx"
    )
    detector_backend: str = Field(default="onnx", description="onnx | ultralytics")
    detector_threads: int = Field(default=0, ge=0, description="intra-op threads; 0 = all cores")
    detector_conf: float = Field(default=0.25, gt=0, lt=1)
    vision_batch: int = Field(default=8, ge=1, description="frames per inference batch")
    gap_cues: bool = Field(
        default=True, description="add appearance-cue gaps along product rows (vision/gapcues.py)"
    )

    # --- data (cleaning, replay, DuckDB history, ask, HTTP ingest) ---------------------------
    history_file: Path | None = Field(
        default=None, description="DuckDB history file; default <data_dir>/history.duckdb"
    )
    ingest_max_body_bytes: int = Field(default=1_048_576, ge=1024, description="413 above this")
    ingest_max_batch: int = Field(default=1000, ge=1, description="events per batch request")

    # --- demand (backroom/demand: forecasts, projections, reorder; docs/demand.md) ----------
    demand_model: str = Field(
        default="holtwinters",
        description="hourly forecaster per store×SKU: holtwinters (smoothed hour-of-day indices) | "
        "holtwinters_raw | profile | snarimax | linear | weekprofile (compared by `backroom backtest`)",
    )
    store_tz: str = Field(
        default="UTC",
        description="the stores' time zone (IANA name): weekprofile learns hours of the week in local "
        "time, so a daylight-saving change does not shift the opening hours",
    )
    demand_grace_minutes: float = Field(
        default=15.0, ge=0, description="an hour closes this long after its end (late events)"
    )
    demand_censor_minutes: float = Field(
        default=10.0, ge=0, description="an hour with the shelf empty longer is not learned"
    )
    order_cycle_hours: float = Field(
        default=24.0, ge=0, description="review cycle added to the lead time for order-up-to"
    )
    reorder_recheck: bool = Field(
        default=True,
        description="the reorder point covers the lead time from the next expected sale (the "
        "next state to re-check on), not from now: no order is missed over a closed night",
    )
    order_grace_hours: float = Field(
        default=2.0, ge=0, description="a REORDER's order counts as on order until ETA + this"
    )

    # --- ops (metrics, logs; docs/operations.md) --------------------------------------------
    metrics_port: int | None = Field(
        default=9108, ge=0, le=65535,
        description="worker Prometheus /metrics port; 0 or unset = off",
    )
    metrics_host: str = Field(default="127.0.0.1", description="0.0.0.0 in a container")
    metrics_interval_s: float = Field(
        default=5.0, gt=0, description="how often consumer lag and open alerts are sampled"
    )
    log_format: str = Field(
        default="text", pattern="^(text|json)$", description="text | json (one JSON object a line)"
    )

    @field_validator("store_tz", mode="after")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/London)") from None
        return value

    @field_validator("dashboard_token", mode="after")
    @classmethod
    def _empty_token_is_unset(cls, value: str | None) -> str | None:
        # `BACKROOM_DASHBOARD_TOKEN=` must not mean "a token that everyone knows": it is unset,
        # so the loopback-only rules (bind, Host check) stay on.
        return value if value and value.strip() else None

    @model_validator(mode="after")
    def _replicate_on_a_cluster(self) -> Settings:
        if "replication_factor" not in self.model_fields_set and self.embedded and self.brokers > 1:
            self.replication_factor = min(3, self.brokers)
        return self

    @property
    def embedded(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def bootstrap(self) -> str:
        """The bootstrap address every client uses: the configured cluster or the embedded one."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        # The embedded cluster's node i listens on broker_port + 2i (broker/embedded.py).
        return ",".join(f"{self.broker_host}:{self.broker_port + 2 * i}" for i in range(self.brokers))

    @property
    def controller_port(self) -> int:
        return self.broker_controller_port or self.broker_port + 1

    @property
    def frames_dir(self) -> Path:
        return (self.frame_root or self.data_dir / "frames").resolve()

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def subprocess_env(self) -> dict[str, str]:
        """This process's environment with BACKROOM_* replaced by these settings, so a child
        process (a worker, the dashboard) reads exactly the same values."""
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKROOM_")}
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                env[f"BACKROOM_{name.upper()}"] = str(value)
        return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
