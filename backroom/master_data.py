"""Master data as it arrives: catalog entries and planograms, validated one message at a time.

    result = CatalogProcessor(settings).process(msg)    # msg: a RawMessage of catalog.skus
    if result.dead: ...dead-letter it...  elif result.value is None: ...delete result.key...
    else: ...store result.value under result.key...

No Kafka here: the worker's catalog and planogram agents (streams/worker.py) call these and
write what they return. Tests: `pytest tests/unit/test_master_data.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backroom.processing import RawMessage, dead_letter
from backroom.records import CatalogSku, DeadLetter, InvalidEvent, Planogram, decode
from backroom.settings import Settings


@dataclass
class MasterDataResult:
    """What one message does to its table: store `value` under `key`, delete `key` (value and
    dead both None: a tombstone), or nothing but a dead letter."""

    key: str
    value: dict[str, Any] | None = None
    dead: DeadLetter | None = None


def _key(msg: RawMessage) -> str:
    return msg.key.decode("utf-8", errors="replace") if msg.key else ""


class CatalogProcessor:
    """catalog.skus: keyed `{store_id}:{sku}`, or `*:{sku}` for every store; a tombstone (no
    value) removes the entry."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.max_event_bytes

    def process(self, msg: RawMessage) -> MasterDataResult:
        key = _key(msg)
        if msg.value is None:
            return MasterDataResult(key)
        try:
            entry = decode(CatalogSku, msg.value, self.max_bytes)
            store, _, sku = key.partition(":")
            if not store or sku != entry.sku:
                raise InvalidEvent(f"key {key!r} must be '{{store_id}}:{entry.sku}' or '*:{entry.sku}'")
        except InvalidEvent as exc:
            return MasterDataResult(key, dead=dead_letter(msg, exc.reason))
        return MasterDataResult(key, entry.to_dict())


class PlanogramProcessor:
    """catalog.planograms: keyed `{store_id}:{camera_id}` (co-partitioned with camera.frames);
    a planogram is larger than an event, hence four times the event size limit."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = 4 * settings.max_event_bytes

    def process(self, msg: RawMessage) -> MasterDataResult:
        key = _key(msg)
        try:
            pg = decode(Planogram, msg.value, self.max_bytes)
            if key != f"{pg.store_id}:{pg.camera_id}":
                raise InvalidEvent(f"key {key!r} does not match store_id:camera_id")
        except InvalidEvent as exc:
            return MasterDataResult(key, dead=dead_letter(msg, exc.reason))
        return MasterDataResult(key, pg.to_dict())
