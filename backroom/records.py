"""Event records of every topic in the contract: one source of truth.

Print their JSON Schemas with `backroom schema` (or `backroom schema pos.sales`).
`decode(topic, raw)` turns raw Kafka bytes into a validated record or raises `InvalidEvent`
with a reason a person can act on; the worker sends that reason to `dead-letter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, cast

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

# Far-past and far-future stamps are almost always unit bugs (seconds vs ms) or clock faults.
MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_QTY = 100_000

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
EventId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]


def _sane_year(ts: datetime) -> datetime:
    if not MIN_YEAR <= ts.year <= MAX_YEAR:
        raise ValueError(f"timestamp year {ts.year} outside {MIN_YEAR}..{MAX_YEAR}")
    return ts


Timestamp = Annotated[AwareDatetime, AfterValidator(_sane_year)]


class InvalidEvent(ValueError):
    """A record that cannot be processed; `reason` goes to dead-letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Record(BaseModel):
    # Unknown fields are ignored so producers can add fields before consumers know them.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# --- master data -----------------------------------------------------------------------------


class CatalogSku(Record):
    sku: Code
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    category: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    shelf_capacity: int = Field(ge=1, le=MAX_QTY)
    min_shelf_qty: int = Field(ge=0, le=MAX_QTY)
    lead_time_hours: FiniteFloat = Field(ge=0, le=24 * 365)
    case_pack: int = Field(ge=1, le=MAX_QTY)
    unit_cost: FiniteFloat | None = Field(default=None, ge=0)
    aisle: str | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _min_fits_shelf(self) -> CatalogSku:
        # The one catalog rule across fields: the ingest API, the worker and `clean` all use it.
        if self.min_shelf_qty > self.shelf_capacity:
            raise ValueError(
                f"min_shelf_qty {self.min_shelf_qty} is above shelf_capacity {self.shelf_capacity}"
            )
        return self


class PlanogramSlot(Record):
    sku: Code
    box: Annotated[list[FiniteFloat], Field(min_length=4, max_length=4)]
    facings: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _box_in_frame(self) -> PlanogramSlot:
        x0, y0, x1, y1 = self.box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError("box must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1")
        return self


class Planogram(Record):
    store_id: Code
    camera_id: Code
    slots: list[PlanogramSlot] = Field(max_length=500)


# --- events ------------------------------------------------------------------------------------


class Sale(Record):
    event_id: EventId
    ts: Timestamp
    store_id: Code
    sku: Code
    qty: int = Field(ge=1, le=MAX_QTY)
    # Finite: 1e309 parses to inf, which JSON cannot carry (it was published as null).
    unit_price: FiniteFloat | None = Field(default=None, ge=0)
    register_id: str | None = Field(default=None, max_length=64)


ScanKind = Literal["receive", "move_to_shelf", "count", "adjust"]
Location = Literal["backroom", "shelf"]


class Scan(Record):
    event_id: EventId
    ts: Timestamp
    store_id: Code
    sku: Code
    kind: ScanKind
    qty: int = Field(ge=-MAX_QTY, le=MAX_QTY)
    location: Location = "backroom"

    @model_validator(mode="after")
    def _qty_fits_kind(self) -> Scan:
        if self.kind in ("receive", "move_to_shelf") and self.qty < 1:
            raise ValueError(f"qty must be >= 1 for kind {self.kind}")
        if self.kind == "count" and self.qty < 0:
            raise ValueError("qty must be >= 0 for kind count")
        if self.kind == "adjust" and self.qty == 0:
            raise ValueError("qty must be non-zero for kind adjust")
        return self


class CameraFrame(Record):
    event_id: EventId
    ts: Timestamp
    store_id: Code
    camera_id: Code
    frame_uri: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    width: int | None = Field(default=None, ge=1, le=20000)
    height: int | None = Field(default=None, ge=1, le=20000)


# --- derived -----------------------------------------------------------------------------------


class ShelfObservation(Record):
    ts: Timestamp
    store_id: Code
    sku: Code
    camera_id: Code
    frame_event_id: EventId
    facings_expected: int
    facings_visible: int
    fill_ratio: float
    confidence: float
    boxes: list[dict[str, Any]] = Field(default_factory=list)
    frame_uri: str | None = None


class InventoryState(Record):
    ts: Timestamp
    store_id: Code
    sku: Code
    shelf_qty: int
    backroom_qty: int
    shelf_capacity: int
    vision_fill: float | None = None
    demand_per_hour: float
    hours_to_shelf_out: float | None = None
    hours_to_stockout: float | None = None
    on_order: int | None = None
    # Extensions (docs/contract.md, "Contract additions"):
    category: str | None = None
    min_shelf_qty: int | None = None
    catalog_missing: bool | None = None
    last_event_id: str | None = None
    version: int | None = None
    # Demand extensions (docs/demand.md): what REORDER decides on, from the hourly forecast.
    lead_time_hours: float | None = None
    case_pack: int | None = None
    lead_time_demand: float | None = None
    safety_stock: float | None = None
    reorder_point: float | None = None
    order_up_to: float | None = None
    # Camera (docs/contract.md, "Contract additions"): the most units the last confident view allows on
    # the shelf now, when that is below `shelf_qty` (the records drifted above the shelf).
    shelf_seen_max: int | None = None
    # The catalog's cost of one unit (docs/floor.md): what the alerts' expected lost sales are
    # valued at.
    unit_cost: float | None = None


class SkuPosition(InventoryState):
    """`inventory.by-sku` (a repartition topic, keyed by sku; docs/floor.md): a store's
    inventory.state re-keyed by SKU, with the arrival of its next supplier order (event time;
    from its alert book's REORDER orders), so one worker sees every store's position of a SKU."""

    supplier_eta: Timestamp | None = None

    @field_validator("supplier_eta", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        # JSON has no datetime type and records validate strictly (only `ts` is parsed by decode).
        return datetime.fromisoformat(value) if isinstance(value, str) else value


def shelf_estimate(shelf_qty: int, shelf_seen_max: int | None) -> int:
    """The shelf as best known: the records (never below 0), capped by the camera's last view
    when the records drifted above it (`shelf_seen_max`). The worker's book and the alert rules
    both decide on this number."""
    shelf = max(0, shelf_qty)
    return shelf if shelf_seen_max is None else min(shelf, shelf_seen_max)


# CHECK_SHELF (docs/floor.md): a SKU that normally sells has gone improbably quiet while the records
# say its shelf has stock. TRANSFER: move stock from another store before the supplier order lands.
AlertType = Literal[
    "RESTOCK_SHELF", "STOCKOUT_RISK", "OUT_OF_STOCK", "REORDER", "PHANTOM_STOCK", "CHECK_SHELF", "TRANSFER"
]
AlertStatus = Literal["open", "update", "resolved"]
Severity = Literal["info", "low", "medium", "high", "critical"]
# Least to most urgent: the dashboard's worst-alert colour and `backroom ask`'s ordering.
SEVERITY_RANK: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class Alert(Record):
    alert_id: str
    ts: Timestamp
    store_id: Code
    sku: Code
    type: AlertType
    status: AlertStatus
    severity: Severity
    message: str
    action: str
    evidence: dict[str, Any]


class StoreInfo(Record):
    """`catalog.stores` (compacted, keyed store_id; docs/floor.md): a store and the hours a
    transfer takes from it to each store it can send to (symmetric unless the other says)."""

    store_id: Code
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    transfer_hours: dict[Code, Annotated[float, Field(ge=0, le=24 * 30)]] = Field(default_factory=dict)


class AlertFeedback(Record):
    """A person's verdict on an alert (docs/floor.md): `false_alarm` tunes that store×SKU's
    threshold for the alert's type one step less sensitive, `undo` takes one step back."""

    event_id: EventId
    ts: Timestamp  # event time: the alert's world, not the clock of whoever tapped
    alert_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    store_id: Code
    sku: Code
    alert_type: AlertType
    verdict: Literal["false_alarm", "undo"] = "false_alarm"
    source: Literal["dashboard", "api", "simulation"] = "api"
    by: Annotated[str, StringConstraints(max_length=64)] | None = None
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class DeadLetter(Record):
    source_topic: str
    partition: int
    offset: int
    key: str | None
    error: str
    raw: str


# --- topics ------------------------------------------------------------------------------------

TOPIC_RECORDS: dict[str, type[Record]] = {
    "catalog.skus": CatalogSku,
    "catalog.planograms": Planogram,
    "catalog.stores": StoreInfo,
    "pos.sales": Sale,
    "backroom.scans": Scan,
    "camera.frames": CameraFrame,
    "shelf.observations": ShelfObservation,
    "inventory.state": InventoryState,
    "alerts": Alert,
    "alerts.feedback": AlertFeedback,
    "dead-letter": DeadLetter,
}
COMPACTED_TOPICS = frozenset({"catalog.skus", "catalog.planograms", "catalog.stores"})


def sku_key(store_id: str, sku: str) -> str:
    return f"{store_id}:{sku}"


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


R = TypeVar("R", bound=Record)


def decode(record_type: type[R], raw: bytes | str | None, max_bytes: int = 65536) -> R:
    """Validate one raw Kafka value as `record_type`, or raise InvalidEvent with the reason."""
    if not raw:
        raise InvalidEvent("empty value (or tombstone) where an event was expected")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"value of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(data).__name__}")
    try:
        return _validate(record_type, data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {record_type.__name__}: {_first_error(exc)}") from None


def _validate(record_type: type[R], data: dict[str, Any]) -> R:
    # JSON has no datetime type: parse ISO strings in lax mode for `ts`, strict for the rest, so
    # "3" is not silently accepted as a quantity. `data` is decode's own (fresh from orjson), so
    # `ts` is replaced in place.
    ts = data.get("ts")
    if isinstance(ts, str):
        try:
            data["ts"] = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent(f"ts: unparseable timestamp {ts[:40]!r}") from None
    return validated(record_type, data)


def validated(record_type: type[R], data: Mapping[str, Any]) -> R:
    """`record_type.model_validate(data)`: the same validator and checks, without pydantic's
    Python wrapper around it, which cost about as much as validating a small record (~1 µs a
    call with pydantic 2.14). The worker validates several records per event."""
    return cast(R, record_type.__pydantic_validator__.validate_python(data))


def json_schemas() -> dict[str, dict[str, Any]]:
    return {topic: rec.model_json_schema() for topic, rec in TOPIC_RECORDS.items()}
