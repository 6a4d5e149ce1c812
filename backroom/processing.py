"""Batch processing shared by the Faust agents, the backtest and the benchmarks.

Run: `pytest tests/unit/test_processing.py`, or `python -m bench.processing` for its cost.
Plain classes over raw messages and table readers, no Kafka: an agent collects a batch of raw
messages, calls `InventoryProcessor.process(...)` (states, dead letters, table writes) and
`AlertProcessor.on_states(...)` / `.process(...)` (alerts, alert-book writes), and sends what
comes back. The processors keep a read cache of the states they last wrote (`LiveStates`); the
tables stay the truth.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from backroom.alerts import AlertBook, AlertEngine
from backroom.budget import expected_lost, order_by_cost
from backroom.demand.reorder import ReorderPolicy
from backroom.demand.tracker import DemandConfig
from backroom.eventtime import FutureGuard
from backroom.inventory import InventoryBook, SkuParams, SkuState, micros, to_inventory_state
from backroom.records import (
    Alert,
    CatalogSku,
    DeadLetter,
    InvalidEvent,
    InventoryState,
    Record,
    Sale,
    Scan,
    ShelfObservation,
    decode,
    sku_key,
    validated,
)
from backroom.settings import Settings
from backroom.silent_shelf import SilentShelf
from backroom.state_codec import decode_state, encode_state

R = TypeVar("R", bound=Record)
log = logging.getLogger("backroom.processing")


class RawMessage(NamedTuple):
    """One Kafka message as received: topic is the contract name (without prefix).

    A named tuple (immutable, built in ~0.3 µs): a frozen dataclass cost ~1 µs per message to
    build, 5 % of the worker's time at 50,000 events/s."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter(msg: RawMessage, reason: str) -> DeadLetter:
    raw = msg.value or b""
    try:
        text = raw.decode("utf-8")
        # Control characters would make the dead letter hard to read; keep the bytes exact.
        if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "control characters")
    except UnicodeDecodeError:
        text = "base64:" + base64.b64encode(raw).decode()
    key = None
    if msg.key is not None:
        key = msg.key.decode("utf-8", errors="replace")
    return DeadLetter(
        source_topic=msg.topic, partition=msg.partition, offset=msg.offset, key=key,
        error=reason, raw=text,
    )


def decode_keyed(msg: RawMessage, record_type: type[R], max_bytes: int) -> R:
    """Decode and check that the message key matches `store_id:sku` of the body."""
    record = decode(record_type, msg.value, max_bytes)
    expected = sku_key(record.store_id, record.sku)  # type: ignore[attr-defined]
    got = msg.key.decode("utf-8", errors="replace") if msg.key is not None else None
    if got != expected:
        # A wrong key puts the event on another partition than its store×SKU state.
        raise InvalidEvent(f"key {got!r} does not match store_id:sku {expected!r}")
    return record


# A table value as the loader returns it: the stored JSON bytes (the worker's tables), or the
# parsed dict (tests, the backtest).
StoredState = bytes | dict[str, Any] | None


class LiveStates:
    """The SkuStates this processor last wrote, each with the exact bytes object it wrote.

    A state read back from the table is decoded (`backroom.state_codec`), and its demand model
    again when an hour closes. When the table still
    holds the bytes written from a state (the same object in memory, equal bytes read back
    from RocksDB), that state is what the bytes say, so it is used as is. Anything else that
    wrote the key (a changelog replay after a rebalance) put other bytes there, and the value
    is read as usual.
    The table stays the truth; this is a read cache of at most `size` keys (`BACKROOM_LIVE_STATES`,
    ~7 KB each with the demand model unpickled). A state taken
    into a batch leaves the cache and comes back only with the bytes written at its end: a
    batch that fails half way leaves nothing half-applied behind."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._states: dict[str, tuple[bytes, SkuState]] = {}
        self.hits = self.misses = 0  # reads served live / parsed (the worker logs them)

    def take(self, key: str, stored: bytes) -> SkuState | None:
        hit = self._states.pop(key, None) if self.size else None
        # The very bytes object (the memory store), or equal bytes (a disk store hands out a
        # copy): a value decodes to exactly the state it was encoded from (state_codec).
        if hit is not None and (hit[0] is stored or hit[0] == stored):
            self.hits += 1
            return hit[1]
        self.misses += 1
        return None

    def put(self, key: str, value: bytes, state: SkuState) -> None:
        if not self.size:
            return
        states = self._states
        states[key] = (value, state)
        if len(states) > self.size:
            del states[next(iter(states))]  # the least recently written


class StateViews(Mapping[str, dict[str, Any]]):
    """The touched keys' states as dicts (`SkuState.to_dict`), built when read: the worker
    writes the binary values and never needs them; tests and the backtest read a few."""

    def __init__(self) -> None:
        self._states: dict[str, SkuState] = {}

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self._states[key].to_dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)


@dataclass
class InventoryResult:
    # The touched keys' states as dicts. Read them before the next batch: they are built from
    # the states the processor keeps live, which the next batch changes.
    states: StateViews = field(default_factory=StateViews)
    # The same states as table values (`backroom.state_codec`); the worker writes these.
    values: dict[str, bytes] = field(default_factory=dict)
    published: list[InventoryState] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    # CHECK_SHELF lifecycle events from the silent-shelf watch (BACKROOM_SILENT_SHELF).
    alerts: list[Alert] = field(default_factory=list)


CatalogLookup = Callable[[str], Mapping[str, Any] | None]
PARAMS_CACHE = 4096  # catalog entries whose SkuParams are kept


class InventoryProcessor:
    """Sales and scans → per-SKU state and the `inventory.state` records to publish."""

    record_types: dict[str, type[Sale] | type[Scan]] = {"pos.sales": Sale, "backroom.scans": Scan}

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.book = InventoryBook(settings.dedup_window, demand=DemandConfig.from_settings(settings))
        self.policy = ReorderPolicy(settings.service_level_z, settings.order_cycle_hours,
                                    recheck=settings.reorder_recheck)
        self.defaults = SkuParams(
            shelf_capacity=settings.default_shelf_capacity,
            min_shelf_qty=settings.default_min_shelf_qty,
            lead_time_hours=settings.default_lead_time_hours,
            case_pack=settings.default_case_pack,
            missing=True,
        )
        self._params: dict[int, tuple[Mapping[str, Any], SkuParams]] = {}
        self.live = LiveStates(settings.live_states)
        self.future = FutureGuard(settings.max_future_hours)
        # The silent-shelf watch (in memory; docs/floor.md) and the newest event time seen.
        self.silent = SilentShelf(settings.silent_shelf_threshold) if settings.silent_shelf else None
        self.clock = 0.0
        self._sale_t: dict[str, float] = {}
        self._sales: dict[str, list[tuple[float, int]]] = {}
        self._look_t: dict[str, float] = {}

    def _state(self, states: dict[str, SkuState], load: Callable[[str], StoredState], key: str,
               store_id: str, sku: str) -> SkuState:
        """The batch's working copy of a key's state: loaded from the table once per batch."""
        state = states.get(key)
        if state is None:
            stored = load(key)
            if isinstance(stored, bytes):
                state = self.live.take(key, stored) or decode_state(stored)
            else:
                state = SkuState.from_dict(stored) if stored else SkuState(store_id, sku)
            states[key] = state
        return state

    def _note(self, key: str, event: Sale | Scan) -> None:
        """What the silent-shelf watch needs from an applied event: sales and looks at the shelf."""
        t = event.ts.timestamp()
        if t > self.clock:
            self.clock = t
        if isinstance(event, Sale):
            self._sales.setdefault(key, []).append((t, event.qty))
            if t > self._sale_t.get(key, 0.0):
                self._sale_t[key] = t
        elif event.kind == "move_to_shelf" or (event.kind == "count" and event.location == "shelf"):
            if t > self._look_t.get(key, 0.0):
                self._look_t[key] = t

    def _watch_silence(self, result: InventoryResult, states: Mapping[str, SkuState], catalog: CatalogLookup) -> None:
        silent = self.silent
        if silent is None:
            return
        first = len(result.alerts)
        for key, state in states.items():
            if state.clock_us is None:
                continue
            d = state.demand
            result.alerts.extend(silent.observe(
                state.store_id, state.sku, shelf=state.shelf_estimate, last_sale=self._sale_t.pop(key, None),
                looked=self._look_t.pop(key, None), rate_at=d.rate_at, ready=d.ready, now=state.clock_us / 1e6,
                sales=self._sales.pop(key, []),
            ))
        result.alerts.extend(silent.advance(self.clock))
        for alert in result.alerts[first:]:
            if alert.status == "open":
                ev = alert.evidence
                params = self.params(catalog, alert.store_id, alert.sku)
                ev["expected_lost"] = expected_lost(
                    "CHECK_SHELF", {"demand_per_hour": ev.get("demand_per_hour"), "unit_cost": params.unit_cost},
                    reaction_hours=self.settings.staff_reaction_hours,
                    default_lead_hours=self.settings.default_lead_time_hours, evidence=ev,
                )

    def _finish(self, result: InventoryResult, states: Mapping[str, SkuState], catalog: CatalogLookup) -> None:
        """Table values and published states for the keys the batch read."""
        self._watch_silence(result, states, catalog)
        for key, state in states.items():
            result.states._states[key] = state
            result.values[key] = blob = encode_state(state)
            self.live.put(key, blob, state)
            if state.clock_us is not None:
                # Re-published even when the batch held only redeliveries: a crash between
                # the table write and the publish must not leave downstream a version behind.
                self._publish(result, state, catalog)

    def params(self, catalog: CatalogLookup, store_id: str, sku: str) -> SkuParams:
        entry = catalog(sku_key(store_id, sku)) or catalog(sku_key("*", sku))
        if entry is None:
            return self.defaults
        # Every published state needs its SKU's params; validating the entry each time cost ~3 µs.
        # An in-memory table hands out the same entry object until the entry is replaced, so the
        # params are kept per entry object (held here, so its id is not reused while cached).
        cached = self._params.get(id(entry))
        if cached is not None and cached[0] is entry:
            return cached[1]
        params = SkuParams.from_catalog(validated(CatalogSku, entry))
        if len(self._params) >= PARAMS_CACHE:
            self._params.clear()  # a store that copies entries out never hits: stay bounded
        self._params[id(entry)] = (entry, params)
        return params

    def process(
        self,
        messages: Sequence[RawMessage],
        load: Callable[[str], StoredState],
        catalog: CatalogLookup,
    ) -> InventoryResult:
        result = InventoryResult()
        states: dict[str, SkuState] = {}  # every key the batch read: each is written back
        for msg in messages:
            record_type = self.record_types.get(msg.topic)
            if record_type is None:
                result.dead.append(dead_letter(msg, f"no handler for topic {msg.topic}"))
                continue
            try:
                event = decode_keyed(msg, record_type, self.settings.max_event_bytes)
            except InvalidEvent as exc:
                result.dead.append(dead_letter(msg, exc.reason))
                continue
            key = sku_key(event.store_id, event.sku)
            state = self._state(states, load, key, event.store_id, event.sku)
            source = f"{msg.topic}:{msg.partition}"
            if msg.offset <= state.offsets.get(source, -1):
                result.duplicates += 1  # redelivered after a restart: already in the state
                continue
            far = self.future.check(event.store_id, micros(event.ts), key, state.clock_us)
            if far is not None:
                result.dead.append(dead_letter(msg, far))
                state.offsets[source] = msg.offset
                continue
            try:
                applied = self.book.apply(state, event)
            except Exception as exc:  # a bug must cost one event (kept in dead-letter), not the worker
                log.exception("processing %s[%s]@%s failed", msg.topic, msg.partition, msg.offset)
                result.dead.append(dead_letter(msg, f"processing failed: {type(exc).__name__}: {exc}"))
                applied = False
            state.offsets[source] = msg.offset
            if applied:
                result.applied += 1
                if self.silent is not None:
                    self._note(key, event)
            else:
                result.duplicates += 1
        self._finish(result, states, catalog)
        return result

    def _publish(self, result: InventoryResult, state: SkuState, catalog: CatalogLookup) -> None:
        try:
            params = self.params(catalog, state.store_id, state.sku)
            result.published.append(to_inventory_state(state, params, policy=self.policy))
        except Exception:  # the state is still written; the next event publishes it
            log.exception("projecting %s:%s failed", state.store_id, state.sku)

    def process_observations(
        self,
        messages: Sequence[RawMessage],
        load: Callable[[str], StoredState],
        catalog: CatalogLookup,
    ) -> InventoryResult:
        """Camera fill per SKU slot → the shelf estimate (`vision_fill`, and the record when the
        camera confidently sees more than recorded). Redeliveries are skipped by offset."""
        result = InventoryResult()
        states: dict[str, SkuState] = {}
        for msg in messages:
            try:
                obs = decode_keyed(msg, ShelfObservation, 4 * self.settings.max_event_bytes)
            except InvalidEvent as exc:
                result.dead.append(dead_letter(msg, exc.reason))
                continue
            key = sku_key(obs.store_id, obs.sku)
            state = self._state(states, load, key, obs.store_id, obs.sku)
            source = f"{msg.topic}:{msg.partition}"
            if msg.offset <= state.offsets.get(source, -1):
                result.duplicates += 1
                continue
            state.offsets[source] = msg.offset
            us = micros(obs.ts)
            far = self.future.check(obs.store_id, us, key, state.clock_us)
            if far is not None:
                result.dead.append(dead_letter(msg, far))
                continue
            params = self.params(catalog, obs.store_id, obs.sku)
            self.book.apply_vision(state, obs.fill_ratio, obs.confidence, params, obs.facings_expected, us)
            if self.silent is not None and obs.confidence > 0:
                t = obs.ts.timestamp()  # a camera view is a look at the shelf
                self._look_t[key] = max(t, self._look_t.get(key, 0.0))
                self.clock = max(self.clock, t)
            state.version += 1
            if state.clock_us is None or us > state.clock_us:
                state.clock_us = us
            result.applied += 1
        self._finish(result, states, catalog)
        return result


@dataclass
class AlertResult:
    books: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class AlertProcessor:
    """`inventory.state` and `shelf.observations` → alert lifecycle events per store×SKU."""

    def __init__(self, settings: Settings, engine: AlertEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or AlertEngine(
            horizon_hours=settings.horizon_hours,
            staff_reaction_hours=settings.staff_reaction_hours,
            order_grace_hours=settings.order_grace_hours,
            default_lead_hours=settings.default_lead_time_hours,
        )

    def process(
        self, messages: Sequence[RawMessage], load: Callable[[str], dict[str, Any] | None]
    ) -> AlertResult:
        result = AlertResult()
        books: dict[str, AlertBook] = {}
        stored: dict[str, dict[str, Any] | None] = {}
        for msg in messages:
            try:
                if msg.topic == "inventory.state":
                    record: InventoryState | ShelfObservation = decode_keyed(
                        msg, InventoryState, self.settings.max_event_bytes
                    )
                elif msg.topic == "shelf.observations":
                    record = decode_keyed(msg, ShelfObservation, 4 * self.settings.max_event_bytes)
                else:
                    raise InvalidEvent(f"no handler for topic {msg.topic}")
            except InvalidEvent as exc:
                result.dead.append(dead_letter(msg, exc.reason))
                continue
            try:
                self._apply(record, books, stored, load, result)
            except Exception as exc:  # a bug must cost one record (kept in dead-letter), not the worker
                log.exception("alerting on %s[%s]@%s failed", msg.topic, msg.partition, msg.offset)
                result.dead.append(dead_letter(msg, f"processing failed: {type(exc).__name__}: {exc}"))
        self._changed_books(books, stored, result)
        result.alerts = order_by_cost(result.alerts)
        return result

    def on_states(
        self, states: Sequence[InventoryState], load: Callable[[str], dict[str, Any] | None]
    ) -> AlertResult:
        """Alerts for states the worker has just computed: the same rules as for consumed
        `inventory.state` records, without a trip through the topic and a decode."""
        result = AlertResult()
        books: dict[str, AlertBook] = {}
        stored: dict[str, dict[str, Any] | None] = {}
        for state in states:
            try:
                self._apply(state, books, stored, load, result)
            except Exception:  # the state is published regardless; its next version is evaluated
                log.exception("alerting on %s:%s v%s failed", state.store_id, state.sku, state.version)
        self._changed_books(books, stored, result)
        result.alerts = order_by_cost(result.alerts)  # the alerts topic: most costly first
        return result

    @staticmethod
    def _changed_books(books: dict[str, AlertBook], stored: dict[str, dict[str, Any] | None],
                       result: AlertResult) -> None:
        for k, b in books.items():
            if _book_changed(stored[k], b):
                result.books[k] = b.to_dict()

    def _apply(self, record: InventoryState | ShelfObservation,
               books: dict[str, AlertBook], stored: dict[str, dict[str, Any] | None],
               load: Callable[[str], dict[str, Any] | None], result: AlertResult) -> None:
        key = sku_key(record.store_id, record.sku)
        book = books.get(key)
        if book is None:
            stored[key] = load(key)
            book = books[key] = AlertBook.from_dict(stored[key])
        if isinstance(record, InventoryState):
            result.alerts.extend(self.engine.on_state(book, record))
            return
        gap = record.facings_expected > 0 and record.facings_visible == 0
        observation = {
            "frame_event_id": record.frame_event_id,
            "frame_uri": record.frame_uri,
            "camera_id": record.camera_id,
            "fill_ratio": record.fill_ratio,
            "facings_visible": record.facings_visible,
            "facings_expected": record.facings_expected,
            "boxes": record.boxes,
            "ts": record.ts.isoformat(),
        }
        result.alerts.extend(self.engine.on_observation(book, gap, observation))


# A book whose only change is the newest state it saw need not be written every batch: after a
# restart the states since the last write are evaluated again against the same open alerts,
# which emits nothing new. Writing at least every BOOK_REFRESH versions bounds that replay.
BOOK_REFRESH = 64


def _book_changed(before: dict[str, Any] | None, after: AlertBook) -> bool:
    if before is None:
        return True
    if after.last_version - before.get("last_version", -1) >= BOOK_REFRESH:
        return True
    return after.changed_since(before)
