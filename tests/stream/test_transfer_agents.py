"""The worker's transfer agents through `agent.test_context()` (memory store, no broker).

    pytest tests/stream/test_transfer_agents.py

inventory.state -> inventory.by-sku (keyed by sku, with the next order's arrival from the alert
book) -> one TransferBoard per SKU -> TRANSFER on `alerts`; catalog.stores -> the stores table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from unittest.mock import MagicMock, patch

import faust
import orjson
import pytest

from streams.app import create_app
from streams.checkpoint import Checkpoint
from tests.stream.test_agents import Sent


@pytest.fixture
def transfer_app(settings_factory: Any) -> Iterator[tuple[faust.App, Sent]]:
    settings = settings_factory(kafka_bootstrap="127.0.0.1:1", store="memory://", batch_within_s=0.01,
                                transfers=True)
    app = create_app(settings)
    app.finalize()
    sent = Sent()

    async def fake_send(self: faust.TopicT, key: bytes | None = None, value: bytes | None = None, **_: Any) -> None:
        sent.by_topic.setdefault(self.get_topic_name(), []).append(orjson.loads(value or b"null"))
        sent.keys.setdefault(self.get_topic_name(), []).append(key)  # type: ignore[attr-defined]

    async def fake_produce(self: Any, topic: str, key: bytes | None, value: bytes | None, *_: Any, **__: Any) -> None:
        sent.by_topic.setdefault(topic, []).append(orjson.loads(value or b"null"))
        sent.keys.setdefault(topic, []).append(key)  # type: ignore[attr-defined]
        sent.log.append(("produce", topic))  # type: ignore[attr-defined]

    async def fake_flush(self: Any) -> None:
        sent.log.append(("flush", ""))  # type: ignore[attr-defined]

    def fake_changelog(self: faust.Table, *_: Any, **__: Any) -> Any:
        sent.log.append(("changelog", self.name))  # type: ignore[attr-defined]
        return changelog.return_value

    changelog = MagicMock()
    changelog.return_value.message.partition = 0
    sent.keys = {}  # type: ignore[attr-defined]
    sent.log = []  # type: ignore[attr-defined]
    # Dead letters and the re-keyed states go through Topic.send; alerts through the Checkpoint (the producer).
    with patch.object(faust.Topic, "send", fake_send), patch.object(type(app.producer), "send", fake_produce), \
         patch.object(Checkpoint, "flush", fake_flush), patch.object(faust.Table, "send_changelog", fake_changelog):
        yield app, sent


def state(store: str, shelf: int, back: int, stockout: float | None, rate: float, version: int,
          ts: str = "2026-11-28T14:00:00Z") -> dict[str, Any]:
    return {"ts": ts, "store_id": store, "sku": "P", "shelf_qty": shelf, "backroom_qty": back, "shelf_capacity": 100,
            "demand_per_hour": rate, "hours_to_stockout": stockout, "min_shelf_qty": 0, "lead_time_hours": 72.0,
            "lead_time_demand": rate * 72, "safety_stock": 10.0, "version": version, "unit_cost": 2.0}


async def put(app: faust.App, agent: str, items: list[tuple[bytes, bytes]]) -> None:
    async with app.backroom_agents[agent].test_context() as ctx:  # type: ignore[attr-defined]
        for k, v in items:
            await ctx.put(v, key=k)
        await asyncio.sleep(0.05)


async def test_states_are_rekeyed_by_sku_with_the_next_order_and_planned_across_stores(transfer_app: Any) -> None:
    app, sent = transfer_app
    tables = app.backroom_tables
    tables["alert_books"]["S1:P"] = {"orders": [{"qty": 228, "eta": "2026-12-01T14:00:00+00:00", "alert_id": "r1"},
                                                {"qty": 12, "eta": "2026-11-27T10:00:00+00:00", "alert_id": "r0"}]}
    await put(app, "stores", [(b"S1", orjson.dumps({"store_id": "S1", "transfer_hours": {"S2": 4}})),
                              (b"S9", orjson.dumps({"store_id": "S1"})), (b"S3", b"{oops")])
    assert dict(tables["stores"]) == {"S1": {"store_id": "S1", "transfer_hours": {"S2": 4.0}}}
    s1, s2 = state("S1", 40, 0, 20.0, 2.0, 62), state("S2", 85, 400, None, 0.6, 17, ts="2026-11-28T13:00:00Z")
    await put(app, "inventory_by_sku", [(b"S1:P", orjson.dumps(s1)), (b"S2:P", orjson.dumps(s2)), (b"S1:P", b"[]")])
    by_sku = sent("inventory.by-sku")
    assert [p["store_id"] for p in by_sku] == ["S1", "S2"] and sent.keys["inventory.by-sku"] == [b"P", b"P"]  # type: ignore[attr-defined]
    # The order still to come (the one already past is not it); S2 has none.
    assert by_sku[0]["supplier_eta"] == "2026-12-01T14:00:00+00:00" and "supplier_eta" not in by_sku[1]
    await put(app, "transfers", [(b"P", orjson.dumps(p)) for p in by_sku] + [(b"Q", orjson.dumps(by_sku[0]))])
    [opened] = [a for a in sent("alerts") if a["type"] == "TRANSFER"]
    ev = opened["evidence"]
    assert (opened["store_id"], opened["status"], ev["from_store"], ev["to_store"]) == ("S1", "open", "S2", "S1")
    assert ev["supplier_in_hours"] == 72.0 and ev["hours_to_stockout"] == 20.0 and ev["qty"] > 0
    assert sent.keys["alerts"] == [b"S1:P"]  # type: ignore[attr-defined]
    assert set(tables["transfer_boards"]["P"]["stores"]) == {"S1", "S2"}
    # Dead letters: two bad stores records, the bad state, the position keyed by the wrong sku.
    errors = [d["error"] for d in sent("dead-letter")]
    assert len(errors) == 4 and any("must be the sku" in e for e in errors), errors
    # S1 restocked: its next position resolves the suggestion.
    s1b = state("S1", 100, 200, 150.0, 2.0, 63, ts="2026-11-28T16:00:00Z") | {"supplier_eta": "2026-12-01T14:00:00+00:00"}
    await put(app, "transfers", [(b"P", orjson.dumps(s1b))])
    assert [(a["type"], a["status"], a["alert_id"]) for a in sent("alerts")][-1] == ("TRANSFER", "resolved",
                                                                                    opened["alert_id"])


async def test_a_transfer_alert_is_flushed_before_the_board_that_records_it(transfer_app: Any) -> None:
    """A board written ahead of its alert would, after a crash that lost the alert in flight,
    hold the suggestion as open and never send it again."""
    app, sent = transfer_app
    await put(app, "stores", [(b"S1", orjson.dumps({"store_id": "S1", "transfer_hours": {"S2": 4}}))])
    s1 = state("S1", 40, 0, 20.0, 2.0, 62) | {"supplier_eta": "2026-12-01T14:00:00+00:00"}
    s2 = state("S2", 85, 400, None, 0.6, 17, ts="2026-11-28T13:00:00Z")
    sent.log.clear()
    await put(app, "transfers", [(b"P", orjson.dumps(s2)), (b"P", orjson.dumps(s1))])
    assert [a["type"] for a in sent("alerts")] == ["TRANSFER"]
    log = [(kind, name) for kind, name in sent.log if kind != "changelog" or name.endswith("transfer-boards")]
    alert = log.index(("produce", app.backroom_topics.alerts.get_topic_name()))
    boards = [i for i, (kind, _) in enumerate(log) if kind == "changelog"]
    assert len(boards) == 2 and boards[0] < alert < boards[1], log  # S2's position, then S1's with the alert
    assert ("flush", "") in log[alert:boards[1]], log
