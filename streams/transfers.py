"""The worker's transfer agents (`BACKROOM_TRANSFERS=1`): TRANSFER alerts from every store's
latest position of a SKU, across partitions, the Kafka way.

    BACKROOM_TRANSFERS=1 backroom worker      # catalog.stores says which stores can send to which

Registered by `streams.app.create_app` (`add_transfer_agents`); the rules are plain logic in
`backroom.transfers` (`TransferBoard`, `TransferPlanner`; docs/floor.md). Tests:
`pytest tests/integration/test_transfers_flow.py`.

- `inventory-by-sku` consumes `inventory.state` (keyed store_id:sku) and re-keys each state by its
  SKU onto `inventory.by-sku`, a repartition topic (`streams.topics.REPARTITION_TOPICS`), adding
  `supplier_eta`: the arrival of the next order the store×SKU's alert book holds (REORDER orders;
  the book is co-partitioned with inventory.state, so it is this worker's).
- `transfers` consumes `inventory.by-sku`: all stores' positions of one SKU land on one partition,
  where the `transfer-boards` table keeps them (a `TransferBoard` per SKU, with its open
  suggestions). Each position plans the SKU again at event time (the newest position's ts); the
  TRANSFER opens and resolutions go to `alerts` (keyed by the receiving store×SKU) and are
  flushed before the board that records them is written: the worker's `Checkpoint` steps 1-3, as
  for the alert books (a board written ahead of a lost alert would never send it again).
- `stores` keeps `catalog.stores` in a global table: every worker needs the whole network.
Malformed records go to `dead-letter` with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import faust
import orjson

from backroom.budget import order_by_cost
from backroom.processing import RawMessage, dead_letter
from backroom.records import Alert, InvalidEvent, InventoryState, SkuPosition, StoreInfo, decode
from backroom.settings import Settings
from backroom.transfers import StoreNetwork, TransferBoard
from streams.checkpoint import Checkpoint


def next_arrival(book: dict[str, Any] | None, after: str) -> str | None:
    """The earliest order in an alert book arriving after `after` (ISO event time)."""
    t = datetime.fromisoformat(after)
    etas = [o["eta"] for o in (book or {}).get("orders", []) if datetime.fromisoformat(o["eta"]) > t]
    return min(etas, key=datetime.fromisoformat) if etas else None


def add_transfer_agents(app: faust.App, settings: Settings, topics: Any, alert_books: Any) -> dict[str, Any]:
    """The three agents and their tables; `topics`: the worker's `streams.worker.Topics`."""

    def topic(name: str) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, partitions=settings.partitions)

    by_sku, stores_topic = topic("inventory.by-sku"), topic("catalog.stores")
    schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw", value_serializer="json")
    stores = app.GlobalTable(
        "stores", default=None, schema=schema, partitions=1, recovery_buffer_size=1, use_partitioner=True,
        help="catalog.stores: transfer hours between stores",
    )
    boards = cast(faust.Table, app.Table(
        "transfer-boards", default=None, schema=schema, partitions=settings.partitions, use_partitioner=True,
        help="per SKU: each store's latest position and the open TRANSFER suggestions",
    ))
    app.backroom_tables.update({"stores": stores, "transfer_boards": boards})  # type: ignore[attr-defined]
    checkpoint = Checkpoint(lambda: app.producer)

    async def dead(topic_name: str, event: Any, reason: str) -> None:
        msg = event.message
        raw = RawMessage(topic_name, msg.partition, msg.offset, msg.key, msg.value)
        await topics.dead_letter.send(key=msg.key, value=dead_letter(raw, reason).to_json())

    @app.agent(topics.state, name="inventory-by-sku")
    async def rekey_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                st = decode(InventoryState, event.message.value, settings.max_event_bytes)
            except InvalidEvent as exc:
                await dead("inventory.state", event, exc.reason)
                continue
            value = st.to_dict()
            eta = next_arrival(alert_books.get(f"{st.store_id}:{st.sku}"), value["ts"])
            if eta is not None:
                value["supplier_eta"] = eta
            await by_sku.send(key=st.sku.encode(), value=orjson.dumps(value))

    @app.agent(by_sku, name="transfers")
    async def transfer_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                pos = decode(SkuPosition, event.message.value, settings.max_event_bytes)
                key = event.message.key.decode("utf-8", errors="replace") if event.message.key else ""
                if key != pos.sku:
                    raise InvalidEvent(f"key {key!r} must be the sku {pos.sku!r}")
            except InvalidEvent as exc:
                await dead("inventory.by-sku", event, exc.reason)
                continue
            network = StoreNetwork.from_records(v for v in stores.values() if v)
            board = TransferBoard.from_dict(boards.get(pos.sku))
            alerts: list[Alert] = board.update(pos.to_dict(), network)

            def write(sku: str = pos.sku, board: TransferBoard = board) -> None:
                boards[sku] = board.to_dict()

            await checkpoint.alerts_then_books(topics.alerts.get_topic_name(), order_by_cost(alerts), write)

    @app.agent(stores_topic, name="stores")
    async def stores_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            key = msg.key.decode("utf-8", errors="replace") if msg.key else ""
            if msg.value is None:
                stores.pop(key, None)  # a tombstone removes the store
                continue
            try:
                info = decode(StoreInfo, msg.value, settings.max_event_bytes)
                if key != info.store_id:
                    raise InvalidEvent(f"key {key!r} must be the store_id {info.store_id!r}")
            except InvalidEvent as exc:
                await dead("catalog.stores", event, exc.reason)
                continue
            stores[key] = info.to_dict()

    return {"inventory_by_sku": rekey_agent, "transfers": transfer_agent, "stores": stores_agent}
